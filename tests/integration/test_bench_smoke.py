"""Every benchmark under bench/ runs end to end at a small size (``--smoke``) and prints its figure lines.

The scripts are found, not listed: any ``bench/*.py`` with a ``__main__`` block is a benchmark, and it must
declare ``FIGURES`` (regular expressions, one per figure line it prints). Figures are printed, not judged.
"""

from __future__ import annotations

import ast
import asyncio
import glob
import os
import re
import subprocess
import sys
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from tests.fixtures.databases import _dsn, pg_base_url

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _is_benchmark(path: Path) -> bool:
    return "__main__" in path.read_text(encoding="utf-8")


SCRIPTS = sorted(p for p in BENCH.glob("*.py") if _is_benchmark(p))


def figures_of(script: Path) -> tuple[str, ...]:
    """The script's module-level ``FIGURES`` (a literal tuple of patterns), read without running it."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == "FIGURES" for t in targets):
            assert isinstance(node, ast.Assign)
            return tuple(ast.literal_eval(node.value))
    return ()


def _drop_smoke_leftovers(pid: int) -> None:
    """Remove the databases and files a smoke run named after its pid."""
    for leftover in glob.glob(f"/tmp/*-smoke-{pid}*"):
        Path(leftover).unlink(missing_ok=True)
    base = pg_base_url()
    if base is None:
        return

    async def drop() -> None:
        conn = await asyncpg.connect(_dsn(base))
        try:
            names = await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1", f"crmtel_bench%_smoke_{pid}"
            )
            for row in names:
                await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


def test_the_suite_finds_every_benchmark() -> None:
    """The scripts measured in the README are all found (a renamed or broken guard would drop one)."""
    names = {p.stem for p in SCRIPTS}
    assert {
        "ami_throughput",
        "import_clients",
        "lookup",
        "popup_latency",
        "report",
        "route",
        "tracker",
    } <= names
    assert "smoke" not in names
    assert "benchdb" not in names


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_benchmark_runs_at_smoke_size_and_prints_its_figures(script: Path) -> None:
    """``bench/X.py --smoke`` exits 0 and prints every figure line its FIGURES name (on PostgreSQL too)."""
    figures = figures_of(script)
    assert figures, f"{script.name} declares no FIGURES"
    command = [sys.executable, str(script), "--smoke"]
    help_text = subprocess.run(
        [*command[:2], "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "--smoke" in help_text
    base = pg_base_url()
    if base is not None and "--database-url" in help_text:
        command += ["--database-url", base]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=BENCH.parent
    )
    try:
        output, _ = process.communicate(timeout=150)
    finally:
        process.kill()
        process.wait()
        _drop_smoke_leftovers(process.pid)
    assert process.returncode == 0, output
    lines = output.splitlines()
    missing = [f for f in figures if not any(re.search(f, line) for line in lines)]
    assert missing == [], output
