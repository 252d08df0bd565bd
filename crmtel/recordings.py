"""Where a call's recording lives below the recordings folder (FreePBX's ``YYYY/MM/DD/`` layout included).

Asterisk's MixMonitor reports the file it writes in ``MIXMONITOR_FILENAME``, always absolute (a relative name is
placed below ``astspooldir/monitor``). FreePBX's ``sub-record-check`` (core) records to
``${MIXMON_DIR}${YEAR}/${MONTH}/${DAY}/${CALLFILENAME}.${MON_FMT}`` — below ``/var/spool/asterisk/monitor`` unless
``MIXMON_DIR`` is set — and keeps only the basename in ``CDR(recordingfile)``; a CDR backfill therefore knows
just the name, and the date folder has to be found again from the call's start.

``relpath`` is pure (the tracker uses it for the ``{relpath}`` URL placeholder); ``locate`` looks at the disk
and never returns anything outside the folder, whatever the stored name says.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath

# FreePBX's default MIXMON_DIR base (core's sub-record-check) and plain Asterisk's astspooldir/monitor.
DEFAULT_RECORDINGS_DIR = "/var/spool/asterisk/monitor"


def _clean_parts(path: PurePosixPath) -> tuple[str, ...] | None:
    """The path's parts, or None if any part could climb out ('..') or is not a plain name."""
    parts = tuple(p for p in path.parts if p not in ("/", "."))
    if not parts or any(p == ".." or "\x00" in p for p in parts):
        return None
    return parts


def relpath(path: str | None, root: str = DEFAULT_RECORDINGS_DIR) -> str | None:
    """The recording's path below ``root``: ``/var/spool/asterisk/monitor/2026/12/01/x.wav`` -> ``2026/12/01/x.wav``.

    A relative name is already below the folder. An absolute path is taken relative to ``root``, else to
    Asterisk's own spool (the PBX writes there even when crmtel sees it mounted elsewhere), else only its file
    name is kept. Anything with ``..`` gives None.
    """
    if not path:
        return None
    stored = PurePosixPath(path)
    if stored.is_absolute():
        base = next(
            (
                b
                for b in (PurePosixPath(root), PurePosixPath(DEFAULT_RECORDINGS_DIR))
                if stored.is_relative_to(b)
            ),
            None,
        )
        stored = stored.relative_to(base) if base is not None else PurePosixPath(stored.name)
    parts = _clean_parts(stored)
    return "/".join(parts) if parts is not None else None


def _candidates(recording_file: str, root: Path, started_at: datetime | None) -> list[PurePosixPath]:
    """Relative paths to try, best first."""
    stored = PurePosixPath(recording_file)
    out: list[PurePosixPath] = []
    if stored.is_absolute():
        for prefix in (root, root.resolve()):
            prefix_posix = PurePosixPath(prefix.as_posix())
            if stored.is_relative_to(prefix_posix):
                out.append(stored.relative_to(prefix_posix))
        # Written under another mount point (/var/spool/asterisk/monitor on the PBX, an NFS mount here):
        # the longest tail that exists below our folder, down to the bare file name.
        parts = stored.parts[1:]
        out.extend(PurePosixPath(*parts[i:]) for i in range(len(parts)))
    else:
        out.append(stored)
    if started_at is not None and len(stored.parts) == 1:
        # Only the basename is known (FreePBX's CDR recordingfile): FreePBX's date folders of the call's day.
        # The PBX's local date is within a day of UTC's, so three folders cover every time zone.
        day = started_at.date()
        for delta in (0, -1, 1):
            folder = (day + timedelta(days=delta)).strftime("%Y/%m/%d")
            out.append(PurePosixPath(folder) / stored.name)
    return out


def locate(root: Path, recording_file: str, started_at: datetime | None = None) -> Path | None:
    """The recording's file inside ``root`` (resolved, symlinks followed), or None; never a file outside it."""
    try:
        base = root.resolve(strict=True)
    except (OSError, ValueError):
        return None
    for relative in _candidates(recording_file, root, started_at):
        parts = _clean_parts(relative)
        if parts is None:
            continue
        try:
            candidate = base.joinpath(*parts).resolve(strict=True)
        except (OSError, ValueError):
            continue
        if candidate.is_relative_to(base) and candidate.is_file():
            return candidate
    return None
