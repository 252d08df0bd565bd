"""Master.csv as cdr_csv writes it with crmtel's cdr.conf (loguniqueid, loguserfield, newcdrcolumns): the
second witness of what the PBX did, read here with the csv module alone (not crmtel's reader)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

# cdr_csv's columns with loguniqueid = yes, loguserfield = yes, newcdrcolumns = yes.
COLUMNS = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
    "uniqueid",
    "userfield",
    "peeraccount",
    "linkedid",
    "sequence",
)


@dataclass(frozen=True, slots=True)
class CdrRow:
    """One CDR line (one leg of a call)."""

    src: str
    dst: str
    dcontext: str
    clid: str
    channel: str
    dstchannel: str
    lastapp: str
    lastdata: str
    start: datetime
    answer: datetime | None
    end: datetime
    duration: int
    billsec: int
    disposition: str
    uniqueid: str
    userfield: str
    linkedid: str


def _when(text: str, zone: ZoneInfo | None) -> datetime | None:
    if not text:
        return None
    naive = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    # Asterisk writes its local time, which is /etc/localtime's zone (it ignores TZ): this host's.
    return naive.replace(tzinfo=zone) if zone is not None else naive.astimezone()


def read_master_csv(path: Path, zone: str | None = None) -> list[CdrRow]:
    """Every line of Master.csv (none if cdr_csv has not written it yet); times in ``zone`` (default: this host's)."""
    if not path.exists():
        return []
    tz = ZoneInfo(zone) if zone else None
    rows: list[CdrRow] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for fields in csv.reader(handle):
            assert len(fields) == len(COLUMNS), f"Master.csv line with {len(fields)} columns: {fields}"
            v = dict(zip(COLUMNS, fields, strict=True))
            start, end = _when(v["start"], tz), _when(v["end"], tz)
            assert start is not None, fields
            assert end is not None, fields
            rows.append(
                CdrRow(
                    src=v["src"],
                    dst=v["dst"],
                    dcontext=v["dcontext"],
                    clid=v["clid"],
                    channel=v["channel"],
                    dstchannel=v["dstchannel"],
                    lastapp=v["lastapp"],
                    lastdata=v["lastdata"],
                    start=start,
                    answer=_when(v["answer"], tz),
                    end=end,
                    duration=int(v["duration"]),
                    billsec=int(v["billsec"]),
                    disposition=v["disposition"],
                    uniqueid=v["uniqueid"],
                    userfield=v["userfield"],
                    linkedid=v["linkedid"],
                )
            )
    return rows
