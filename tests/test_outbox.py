"""The outbox: durable append, order, quota alarm, and adoption of a dead worker's file."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from alerts.outbox import ROW_OVERHEAD, SUFFIX, Outbox, OutboxFull, OutboxLocked
from tests.incident_fixtures import wait_until


def test_append_peek_remove_in_order(tmp_path: Path) -> None:
    box = Outbox.claim(tmp_path, quota_bytes=1 << 20)
    seqs = [box.append(f'{{"n": {i}}}') for i in range(10)]
    assert seqs == sorted(seqs)
    assert [r.payload for r in box.peek(0, 3)] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
    assert [r.seq for r in box.peek(seqs[4], 100)] == seqs[5:]
    assert box.remove_through(seqs[4]) == 5
    assert box.depth == 5
    assert [r.payload for r in box.peek(0, 1)] == ['{"n": 5}']
    # Sequence numbers are never reused, even after the rows are gone.
    assert box.append("{}") > seqs[-1]
    box.close()


def test_survives_reopen_and_is_adopted_after_close(tmp_path: Path) -> None:
    box = Outbox.claim(tmp_path, quota_bytes=1 << 20)
    box.append("a")
    box.append("b")
    box.close()
    again = Outbox.claim(tmp_path, quota_bytes=1 << 20)
    assert again.path == box.path
    assert [r.payload for r in again.peek(0, 10)] == ["a", "b"]
    assert again.stats().bytes == 2 + 2 * ROW_OVERHEAD
    again.close()


def test_a_live_holder_keeps_its_file(tmp_path: Path) -> None:
    box = Outbox.claim(tmp_path, quota_bytes=1 << 20)
    with pytest.raises(OutboxLocked):
        Outbox(box.path, quota_bytes=1 << 20)
    assert Outbox.adopt(box.path, 1 << 20) is None
    other = Outbox.claim(tmp_path, quota_bytes=1 << 20)
    assert other.path != box.path
    assert Outbox.orphans(tmp_path, exclude=box.path) == []
    other.close()
    assert Outbox.orphans(tmp_path, exclude=box.path) == [other.path]
    box.close()


def test_lock_dies_with_a_killed_process(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path; from alerts.outbox import Outbox\n"
        "box = Outbox.claim(Path(sys.argv[1]), 1 << 20); box.append('from the dead')\n"
        "print(box.path, flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    path = Path(proc.stdout.readline().strip())
    assert Outbox.adopt(path, 1 << 20) is None
    proc.kill()
    proc.wait()
    adopted = Outbox.adopt(path, 1 << 20)
    assert adopted is not None
    assert [r.payload for r in adopted.peek(0, 10)] == ["from the dead"]
    adopted.remove_through(10**9)
    assert adopted.close(delete_if_empty=True)
    assert not list(tmp_path.glob("*" + SUFFIX))


def test_quota_refuses_new_keeps_old_and_clears_with_hysteresis(tmp_path: Path) -> None:
    payload = "x" * (500 - ROW_OVERHEAD)  # 500 bytes a row with the overhead
    box = Outbox.claim(tmp_path, quota_bytes=10_000)
    seqs = [box.append(payload) for _ in range(20)]
    with pytest.raises(OutboxFull, match="10000 of 10000 bytes"):
        box.append(payload)
    assert box.full and box.rejected == 1
    assert [r.seq for r in box.peek(0, 100)] == seqs  # the oldest are kept
    box.remove_through(seqs[0])
    assert box.full  # 95 % used: the alarm holds until 90 %, so it does not flap
    box.remove_through(seqs[1])
    assert not box.full
    box.append(payload)
    assert box.stats().bytes == 9_500
    box.close()


def test_quarantine_takes_a_record_out_of_the_queue(tmp_path: Path) -> None:
    box = Outbox.claim(tmp_path, quota_bytes=1 << 20)
    box.append("good")
    box.append("poison")
    box.append("good too")
    poison = box.peek(0, 10)[1]
    box.quarantine(poison, "refused by Redis: ERR bad")
    assert [r.payload for r in box.peek(0, 10)] == ["good", "good too"]
    assert [(r.payload, why) for r, why in box.quarantined()] == [("poison", "refused by Redis: ERR bad")]
    assert box.stats().quarantined == 1 and box.depth == 2
    box.close()


def test_concurrent_appends_from_camera_threads(tmp_path: Path) -> None:
    box = Outbox.claim(tmp_path, quota_bytes=1 << 24)

    def writer(n: int) -> None:
        for i in range(50):
            box.append(f"{n}:{i}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = box.peek(0, 1000)
    assert len(rows) == 200 == box.depth
    for n in range(4):  # each thread's alerts stay in its own order
        mine = [int(r.payload.split(":")[1]) for r in rows if r.payload.startswith(f"{n}:")]
        assert mine == list(range(50))
    box.close()


def test_appends_that_meet_share_one_commit(tmp_path: Path) -> None:
    box = Outbox.claim(tmp_path, quota_bytes=1 << 20)
    real_write = box._write
    release = threading.Event()
    writing = threading.Event()

    def slow_write(batch: list[Any]) -> None:
        writing.set()
        release.wait(10)  # the first commit is slow: the next appends queue behind it
        real_write(batch)

    box._write = slow_write  # type: ignore[method-assign]
    first = threading.Thread(target=box.append, args=("first",))
    first.start()
    assert writing.wait(10)
    others = [threading.Thread(target=box.append, args=(f"queued {i}",)) for i in range(5)]
    for t in others:
        t.start()
    wait_until(lambda: len(box._queue) == 5, 10, "the five appends to queue behind the slow commit")
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert box.commits == 2  # the first alone, then the five that queued behind it together
    assert box.peek(0, 10)[0].payload == "first" and box.depth == 6
    box.close()
