"""A config file that is no config (endless, binary, not a file, nested 100,000 deep) is one line and exit 1 or 2.

Each case runs ``python -m crmtel.cli`` as a process, as an operator would; the child's peak RSS (from
``getrusage`` of a fresh waiter) shows nothing was read beyond the 1 MiB limit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crmtel.configfile import MAX_BYTES, MAX_DEPTH, depth, read_config
from crmtel.errors import ConfigError

# What the interpreter with crmtel's light start-up costs, with room for a loaded machine; /dev/zero read
# to the end would cost gigabytes.
_RSS_BOUND_KB = 120_000


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[str], int]:
    """Exit code, non-empty stderr lines and the child's peak RSS in KiB."""
    script = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(p.stderr)\n"
        "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    cmd = [sys.executable, "-c", script, sys.executable, "-m", "crmtel.cli", *args]
    base = {k: v for k, v in os.environ.items() if not k.startswith("CRMTEL_")}
    # A hang guard only: a hostile file must never hold the command.
    done = subprocess.run(cmd, capture_output=True, text=True, env={**base, **(env or {})}, timeout=60)
    code, rss = (int(x) for x in done.stdout.split())
    return code, [line for line in done.stderr.splitlines() if line.strip()], rss


def _hostile_files(tmp_path: Path) -> dict[str, Path]:
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    dotted = tmp_path / "dotted.toml"
    dotted.write_text("a" + ".a" * 400_000 + " = 1\n", encoding="utf-8")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(256)) * 1000)
    latin = tmp_path / "cp1251.toml"
    latin.write_bytes('[i18n]\nlanguage = "Русский"\n'.encode("cp1251"))
    big = tmp_path / "big.toml"
    big.write_text("# padding\n" * (MAX_BYTES // 10 + 1), encoding="utf-8")
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    return {
        "/dev/zero": Path("/dev/zero"),
        "deep": deep,
        "dotted": dotted,
        "binary": binary,
        "cp1251": latin,
        "big": big,
        "fifo": fifo,
        "directory": tmp_path,
    }


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("/dev/zero", "not a regular file (a character device)"),
        ("deep", f"nested more than {MAX_DEPTH} deep"),
        ("dotted", "a key of more than 64 parts"),
        ("binary", "binary (NUL bytes)"),
        ("cp1251", "line 2 is not UTF-8 text"),
        ("big", f"the limit is {MAX_BYTES}"),
        ("fifo", "not a regular file (a FIFO)"),
        ("directory", "not a regular file (a directory)"),
    ],
)
def test_a_file_that_is_no_config_is_one_line_and_a_failed_check(
    tmp_path: Path, case: str, says: str
) -> None:
    """`config check` exits 1 with one `crmtel:` line naming the file and what is wrong, reading at most 1 MiB."""
    path = _hostile_files(tmp_path)[case]
    code, lines, rss = _run("--config", str(path), "config", "check")
    assert code == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"crmtel: config file {path}")
    assert says in lines[0]
    assert rss < _RSS_BOUND_KB


def test_every_other_command_refuses_it_as_a_usage_error(tmp_path: Path) -> None:
    """`run` with /dev/zero for a config exits 2 (a usage error) with the same single line."""
    code, lines, rss = _run("--config", "/dev/zero", "run")
    assert code == 2
    assert lines == ["crmtel: config file /dev/zero is not a regular file (a character device)"]
    assert rss < _RSS_BOUND_KB


def test_an_environment_variable_nested_too_deep_is_one_line(tmp_path: Path) -> None:
    """A CRMTEL_* JSON value nested 20,000 deep is a config error line, not a RecursionError traceback."""
    code, lines, _ = _run("config", "check", env={"CRMTEL_PBX": "[" * 20_000 + "]" * 20_000})
    assert code == 1
    assert lines == ["crmtel: a CRMTEL_* environment variable holds values nested too deep"]


def test_a_sane_config_still_reads(tmp_path: Path) -> None:
    """Dots in numbers, strings and comments are not key parts; the example config's depth is within bounds."""
    path = tmp_path / "ok.toml"
    path.write_text(
        "# a.b.c " + "." * 200 + "\n"
        'note = "' + "." * 200 + '"\n'
        "ratio = 1.5\n"
        '[pbx.branch]\nhost = "10.0.0.1"\n',
        encoding="utf-8",
    )
    assert read_config(path) == {"note": "." * 200, "ratio": 1.5, "pbx": {"branch": {"host": "10.0.0.1"}}}
    example = Path(__file__).parents[2] / "config" / "crmtel.toml"
    assert depth(read_config(example)) <= MAX_DEPTH


def test_an_integer_of_thousands_of_digits_is_a_toml_error(tmp_path: Path) -> None:
    """Python's int-from-string limit surfaces as "not valid TOML", not as a ValueError traceback."""
    path = tmp_path / "digits.toml"
    path.write_text("a = " + "1" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        read_config(path)
