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


_BURST = """
import gc, sys
from crmtel.memory import collect_less_often, freeze_startup_objects
freeze_startup_objects()
if sys.argv[1] == "tuned":
    collect_less_often()
held = [{"k": (i, str(i)), "l": [i]} for i in range(50_000)]  # what a node holds: pages, live calls
older = [0]
gc.callbacks.append(lambda phase, info: older.__setitem__(0, older[0] + (phase == "stop" and info["generation"] > 0)))
queue = []
for n in range(19_000):  # a burst of AMI events of 20 headers each, queued a while, then handled
    queue.append(tuple((f"Header{j}", f"value{n}") for j in range(20)))
    if len(queue) > 3000:
        del queue[:1000]
print(older[0])
"""


def _older_collections(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _BURST, mode], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_a_burst_of_ami_events_triggers_no_collection_of_the_older_generations() -> None:
    """After ``collect_less_often`` a burst like the cluster bench's (19,000 events) walks no older generation;
    with CPython's default thresholds the same burst does (the 30-90 ms pauses of the leader)."""
    assert _older_collections("default") > 0
    assert _older_collections("tuned") == 0
