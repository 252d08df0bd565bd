"""``crmtel replay`` and ``crmtel calls list`` from the command line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmtel.calls.commands import JSON_FIELDS
from crmtel.cli import main


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI configures logging onto pytest's captured stderr; later tests must not write to it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_replay_then_calls_list_json_prints_the_documented_fields(
    database_url: str, traces_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A replayed trace is listed as JSON with exactly the documented fields and values."""
    trace = traces_dir / "wholesale-local-members.ami"
    assert main(["--database-url", database_url, "replay", str(trace), "--chunk", "7"]) == 0
    out = capsys.readouterr().out
    assert "1 call(s)" in out
    assert "OOO Vector" in out

    assert main(["--database-url", database_url, "calls", "list", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1
    row = rows[0]
    assert tuple(row) == JSON_FIELDS
    assert row["linkedid"] == "1795462106.23"
    assert row["direction"] == "inbound"
    assert row["caller_number"] == "+79162220002"
    assert row["answered_by"] == "104"
    assert row["rang"] == ["104"]
    assert row["queue"] == "wholesale"
    assert row["outcome"] == "answered"
    assert row["missed_reason"] is None
    assert row["started_at"].startswith("2026-11-23T19:28:")
    assert row["recording_url"] == f"/api/calls/pbx1:{row['linkedid']}/recording"
    # The route crmtel chose (FastAGI VarSets in the trace) is part of the JSON.
    assert (row["route_kind"], row["route_target"]) == ("queue", "wholesale")
    assert row["route_reason"] is None  # this recording's dialplan predates CRMTEL_ROUTE_REASON
    assert row["party"] == {"kind": "lead", "id": row["party"]["id"], "name": "OOO Vector"}


def test_calls_list_filters_by_date_and_prints_a_table(
    database_url: str, traces_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--from``/``--to`` select by start date (``--to`` inclusive for a date); table output is readable."""
    assert main(["--database-url", database_url, "replay", str(traces_dir / "queue-abandoned.ami")]) == 0
    capsys.readouterr()
    assert (
        main(["--database-url", database_url, "calls", "list", "--from", "2026-11-23", "--to", "2026-11-23"])
        == 0
    )
    table = capsys.readouterr().out
    assert "missed (abandoned_in_queue)" in table
    assert (
        main(["--database-url", database_url, "calls", "list", "--from", "2026-11-24", "--format", "json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out) == []


def test_replay_of_a_missing_file_fails_cleanly(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong path is an error message and exit code 1, not a traceback."""
    assert main(["--database-url", database_url, "replay", "/nonexistent/x.ami"]) == 1
    assert "no such file" in capsys.readouterr().err


def _freepbx_capture(traces_dir: Path, out: Path) -> Path:
    """``direct-answered`` as a FreePBX captured it: the provider's trunk endpoint is named ``600100`` (a number,
    like an extension) and 101 answered on its WebRTC device ``99101``."""
    data = (traces_dir / "direct-answered.ami").read_bytes()
    data = data.replace(b"PJSIP/trunk-", b"PJSIP/600100-").replace(b"PJSIP/101-", b"PJSIP/99101-")
    out.write_bytes(data)
    return out


def test_replay_of_a_freepbx_capture_uses_the_configured_trunks_and_device_prefixes(
    database_url: str, traces_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``crmtel replay`` is built like ``crmtel run``: with ``[ami] flavour = "freepbx"`` and ``trunks`` the
    capture is an inbound call from +79161110001 answered by 101 (not an internal call answered by 99101)."""
    capture = _freepbx_capture(traces_dir, tmp_path / "freepbx.ami")
    config = tmp_path / "crmtel.toml"
    config.write_text(
        f'database_url = "{database_url}"\n[ami]\nname = "pbx1"\nsecret = "x"\nflavour = "freepbx"\n'
        'trunks = ["600100"]\n',
        encoding="utf-8",
    )
    assert main(["--config", str(config), "replay", str(capture)]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "calls", "list", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["direction"], row["caller_number"], row["answered_by"]) == ("inbound", "+79161110001", "101")
    assert row["rang"] == ["101"]
    assert row["outcome"] == "answered"


def test_replay_as_an_unknown_pbx_fails_cleanly(
    database_url: str, traces_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--pbx`` names a PBX that is not configured: an error message naming the known ones, exit code 1."""
    trace = str(traces_dir / "queue-abandoned.ami")
    assert main(["--database-url", database_url, "replay", trace, "--pbx", "nope"]) == 1
    assert "no PBX named 'nope'" in capsys.readouterr().err


def test_calls_list_from_and_to_with_an_offset_are_those_instants(
    database_url: str, traces_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The call began 19:33 UTC: ``--from 22:30+03:00`` (19:30Z) finds it, ``--from 22:40+03:00`` (19:40Z) and
    ``--to 22:30+03:00`` do not — on SQLite too, where the offset used to be dropped (22:30 read as UTC)."""
    assert main(["--database-url", database_url, "replay", str(traces_dir / "queue-abandoned.ami")]) == 0
    capsys.readouterr()

    def listed(*bounds: str) -> int:
        assert main(["--database-url", database_url, "calls", "list", *bounds, "--format", "json"]) == 0
        return len(json.loads(capsys.readouterr().out))

    assert listed("--from", "2026-11-23T22:30:00+03:00") == 1
    assert listed("--from", "2026-11-23T22:40:00+03:00") == 0
    assert listed("--from", "2026-11-23T22:30:00+03:00", "--to", "2026-11-23T22:40:00+03:00") == 1
    assert listed("--to", "2026-11-23T22:30:00+03:00") == 0
