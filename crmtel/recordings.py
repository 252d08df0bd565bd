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


def _day_folders(started_at: datetime | None) -> set[tuple[str, ...]]:
    """FreePBX's ``YYYY/MM/DD`` folders a call started on: the PBX's local date is within a day of UTC's."""
    if started_at is None:
        return set()
    day = started_at.date()
    return {tuple((day + timedelta(days=delta)).strftime("%Y/%m/%d").split("/")) for delta in (0, -1, 1)}


def _candidates(
    recording_file: str, root: Path, started_at: datetime | None
) -> list[tuple[PurePosixPath, bool]]:
    """Relative paths to try, best first, each with whether it is exactly where the PBX said (else a guess)."""
    stored = PurePosixPath(recording_file)
    out: list[tuple[PurePosixPath, bool]] = []
    if stored.is_absolute():
        bases = (root, root.resolve(), Path(DEFAULT_RECORDINGS_DIR))
        for prefix in bases:
            prefix_posix = PurePosixPath(prefix.as_posix())
            if stored.is_relative_to(prefix_posix):
                out.append((stored.relative_to(prefix_posix), True))
        # Written under another mount point (MIXMON_DIR on the PBX, an NFS mount here): the tails of the path
        # below our folder, each a guess that must still show it is this call's file.
        parts = stored.parts[1:]
        out.extend((PurePosixPath(*parts[i:]), False) for i in range(len(parts)))
    else:
        out.append((stored, len(stored.parts) > 1))
    if started_at is not None and len(stored.parts) == 1:
        # Only the basename is known (FreePBX's CDR recordingfile): FreePBX's date folders of the call's day.
        for folder in sorted(_day_folders(started_at)):
            out.append((PurePosixPath(*folder) / stored.name, False))
    return out


def _of_the_call(relative: PurePosixPath, started_at: datetime | None, linkedid: str | None) -> bool:
    """Whether a guessed path shows it belongs to this call: its day's date folder, or its Linkedid in the name.

    A bare file name alone never does: another call's recording may carry the same name.
    """
    if linkedid and linkedid in relative.name:
        return True
    days = _day_folders(started_at)
    parts = relative.parts
    return any(tuple(parts[i : i + 3]) in days for i in range(len(parts) - 3))


def locate(
    root: Path, recording_file: str, started_at: datetime | None = None, linkedid: str | None = None
) -> Path | None:
    """The call's recording file inside ``root`` (resolved, symlinks followed), or None; never a file outside it.

    The stored path itself (below ``root`` or the PBX's spool) is trusted; any other place tried (a tail of a
    path written under another mount point, FreePBX's date folders for a bare CDR name) must show it is this
    call's file: the call's date folder or its Linkedid in the name, never a bare file name alone.
    """
    try:
        base = root.resolve(strict=True)
    except (OSError, ValueError):
        return None
    for relative, exact in _candidates(recording_file, root, started_at):
        parts = _clean_parts(relative)
        if parts is None:
            continue
        if not exact and not _of_the_call(relative, started_at, linkedid):
            continue
        try:
            candidate = base.joinpath(*parts).resolve(strict=True)
        except (OSError, ValueError):
            continue
        if candidate.is_relative_to(base) and candidate.is_file():
            return candidate
    return None
