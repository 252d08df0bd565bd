"""Start-up objects are frozen out of the cyclic collector once, so its full collections stay short."""

from __future__ import annotations

import gc
import subprocess
import sys


def test_freezing_start_up_objects_happens_once_per_process() -> None:
    """In a fresh interpreter: the first call freezes what is alive, a second one changes nothing."""
    code = (
        "import gc; from crmtel.memory import freeze_startup_objects as f; "
        "assert gc.get_freeze_count() == 0; f(); n = gc.get_freeze_count(); assert n > 1000, n; "
        "keep = [object() for _ in range(100)]; f(); assert gc.get_freeze_count() == n; print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert gc.isenabled()
