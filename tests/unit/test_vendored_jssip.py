"""The vendored JsSIP bundle: the pinned version, loadable as one ES module, shipped with every bundled licence."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "crmtel" / "push" / "static" / "vendor"
SCRIPT = ROOT / "tools" / "vendor-jssip.sh"


def _pinned() -> str:
    found = re.search(r'JSSIP_VERSION="\$\{JSSIP_VERSION:-([0-9.]+)\}"', SCRIPT.read_text(encoding="utf-8"))
    assert found, "tools/vendor-jssip.sh pins no JsSIP version"
    return found.group(1)


def test_bundle_is_the_version_the_script_pins() -> None:
    """The file's banner names the version tools/vendor-jssip.sh builds (a hand-edited bundle would not)."""
    head = (VENDOR / "jssip.js").read_text(encoding="utf-8")[:300]
    assert head.startswith(f"/* JsSIP {_pinned()} (MIT")


def test_every_bundled_package_has_its_licence() -> None:
    """jssip.LICENSE carries the MIT text of JsSIP and of each dependency bundled with it."""
    text = (VENDOR / "jssip.LICENSE").read_text(encoding="utf-8")
    for package in ("jssip", "debug", "events", "sdp-transform", "ms"):
        assert re.search(rf"(?m)^{re.escape(package)} \d+\.\d+\.\d+$", text), package
    assert text.count("Permission is hereby granted, free of charge") >= 5


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_bundle_loads_as_one_es_module() -> None:
    """The page imports the file as it is: its default export is JsSIP with a UA and the WebSocket interface."""
    out = subprocess.run(
        [
            "node",
            "--input-type=module",
            "-e",
            f"import J from {str(VENDOR / 'jssip.js')!r}; "
            "console.log(J.version, typeof J.UA, typeof J.WebSocketInterface)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == [_pinned(), "function", "function"]
