"""Master.csv read by its own rows: a long call's first legs far back in the file, a record cut short with
the next appended to it, a line mixing a cp1251 caller name with UTF-8 dialplan text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from crmtel.cdr.csvsource import CsvCdrSource

_F = "%Y-%m-%d %H:%M:%S"
_T = datetime(2026, 12, 6, 8, 0, 0, tzinfo=UTC)


def _line(linkedid: str, uniqueid: str, start: datetime, end: datetime, disposition: str = "ANSWERED") -> str:
    answer = f'"{start + timedelta(seconds=2):{_F}}"' if disposition == "ANSWERED" else ""
    billsec = int((end - start).total_seconds()) - 2 if disposition == "ANSWERED" else 0
    return (
        f'"","79161110001","200","from-trunk","""Ivan"" <79161110001>","PJSIP/trunk-{uniqueid}",'
        f'"PJSIP/101-2","Dial","PJSIP/101","{start:{_F}}",{answer},"{end:{_F}}",'
        f'{int((end - start).total_seconds())},{billsec},"{disposition}","DOCUMENTATION","{uniqueid}","","",'
        f'"{linkedid}",1\n'
    )


async def test_a_three_hour_call_on_a_busy_pbx_keeps_its_first_leg(tmp_path: Path) -> None:
    """4,000 other calls' rows between a 3-hour call's first leg and its last: the period it ended in gives
    both legs (the first lies in blocks more than two hours before the period)."""
    lines = [_line("1796544000.1", "1796544000.1", _T, _T + timedelta(seconds=30), "NO ANSWER")]
    for i in range(4000):
        start = _T + timedelta(seconds=60 + 2 * i)
        key = f"{1796544100 + 2 * i}.{i + 10}"
        lines.append(_line(key, key, start, start + timedelta(seconds=10)))
    end = _T + timedelta(hours=3)
    lines.append(_line("1796544000.1", "1796544000.5", _T + timedelta(seconds=30), end))
    master = tmp_path / "Master.csv"
    master.write_text("".join(lines))
    source = CsvCdrSource(master, UTC, block_size=16 * 1024)
    legs = await source.legs(end - timedelta(minutes=5), end + timedelta(minutes=5))
    assert sorted(r.uniqueid for r in legs if r.linkedid == "1796544000.1") == [
        "1796544000.1",
        "1796544000.5",
    ]
    assert {r.linkedid for r in legs} == {"1796544000.1"}


async def test_a_record_cut_short_loses_only_itself(tmp_path: Path) -> None:
    """The PBX's write of a record stopped after 57 bytes and the next record was appended to the fragment:
    the fragment is skipped, the whole record after it and the rest are read."""
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    calls = [
        _line(
            f"1796544000.{i}",
            f"1796544000.{i}",
            now + timedelta(minutes=i),
            now + timedelta(minutes=i, seconds=20),
        )
        for i in range(1, 5)
    ]
    master = tmp_path / "Master.csv"
    for cut in (57, 60, 100):
        master.write_text(calls[0] + calls[1][:cut] + calls[2] + calls[3])
        source = CsvCdrSource(master, UTC)
        legs = await source.legs(now - timedelta(minutes=1), now + timedelta(minutes=10))
        assert sorted(r.linkedid for r in legs) == ["1796544000.1", "1796544000.3", "1796544000.4"], cut
        assert source.skipped == 1


async def test_a_cp1251_name_leaves_the_lines_utf8_text_as_it_is(tmp_path: Path) -> None:
    """A cp1251 caller name (from the trunk) and a UTF-8 queue name (from the dialplan) on one line: each
    field is read in its own encoding."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    text = _line("1796544000.1", "1796544000.1", start, start + timedelta(seconds=20))
    head, _, tail = text.partition('"""Ivan"" <79161110001>"')
    tail = tail.replace('"Dial","PJSIP/101"', '"Queue","продажи,t,,,300"')
    master = tmp_path / "Master.csv"
    master.write_bytes(head.encode() + '"""Иван Петров"" <79161110001>"'.encode("cp1251") + tail.encode())
    source = CsvCdrSource(master, UTC)
    (leg,) = await source.legs(start - timedelta(minutes=1), start + timedelta(minutes=10))
    assert leg.clid == '"Иван Петров" <79161110001>'
    assert leg.lastdata == "продажи,t,,,300"
    assert source.cp1251_rows >= 1
