"""The durable outbox: every alert is fsynced to a local SQLite file (WAL) before the worker counts it as sent.

One outbox file per worker process, held with an exclusive ``flock`` for the process's lifetime. The kernel
drops the lock when the process dies (also on SIGKILL), so a restarted worker, or any other worker on the
machine, adopts the file and drains what it holds. Rows are deleted only after Redis has them durably
(see ``alerts/drain.py``); until then a crash republishes them and the idempotency key removes the duplicate.

Bounded by a byte quota: when it is reached, new alerts are refused (the oldest are kept, they are the ones
the case system is waiting for longest) and the ``full`` alarm is raised until the drain makes room.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".outbox.sqlite"
# SQLite's own bookkeeping per row (rowid, record header, b-tree cell): a conservative estimate, so the quota
# is not overrun by many tiny rows.
ROW_OVERHEAD = 64
# The alarm clears once the outbox is back under 90 % of its quota, so it does not flap at the boundary.
CLEAR_FRACTION = 0.9
# Hand freed pages back to the filesystem once this many pile up (4 MiB at 4 KiB pages): after a long outage
# has drained, the file must not keep its peak size.
VACUUM_PAGES = 1024
# The drain checkpoints the WAL into the database once it holds this many pages (4 MiB), so an appending
# camera thread never pays for a checkpoint (SQLite's automatic one runs in whichever commit crosses it).
CHECKPOINT_PAGES = 1000
JOURNAL_LIMIT_BYTES = 1024 * 1024
# An append waits this long for the drain's delete transaction to finish before failing (it takes ~1 ms).
BUSY_TIMEOUT_MS = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    enqueued_at REAL NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    seq INTEGER PRIMARY KEY,
    enqueued_at REAL NOT NULL,
    payload TEXT NOT NULL,
    reason TEXT NOT NULL,
    failed_at REAL NOT NULL
);
"""


class OutboxFull(Exception):
    """The outbox reached its disk quota (or the disk is full): the alert was not accepted."""


class OutboxLocked(Exception):
    """Another live process holds this outbox."""


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One stored alert, in append order."""

    seq: int
    enqueued_at: float
    payload: str


@dataclass(slots=True)
class _Ticket:
    """One append waiting for its group commit."""

    payload: str
    seq: int = 0
    error: sqlite3.Error | None = None
    done: bool = False


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """What the outbox holds right now."""

    depth: int
    bytes: int
    quota_bytes: int
    full: bool
    rejected: int
    quarantined: int


def _try_lock(path: Path) -> int | None:
    """An open fd holding an exclusive flock on ``path``, or None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Outbox:
    """An append-only queue of alert payloads in one SQLite file. Thread-safe; one instance per file.

    Two connections: the appenders' (camera threads; every commit fsynced) and the drain's (reads, deletes
    and WAL checkpoints, not fsynced: a lost delete is a republish, which dedup absorbs). So a camera thread
    waits at most for one short delete, never for a checkpoint or a read.
    """

    def __init__(self, path: Path, quota_bytes: int, *, _lock_fd: int | None = None) -> None:
        self.path = path
        self.quota_bytes = quota_bytes
        self._lock_path = path.with_name(path.name + ".lock")
        fd = _lock_fd if _lock_fd is not None else _try_lock(self._lock_path)
        if fd is None:
            raise OutboxLocked(f"outbox {str(path)!r} is held by another process")
        self._lock_fd: int | None = fd
        self._commit = threading.Condition()  # the appenders' connection and their group commit
        self._queue: list[_Ticket] = []
        self._writing = False
        self._mutex = threading.Lock()  # the drain's reading connection
        self._dmutex = threading.Lock()  # the deleting connection (confirmations, quarantine, checkpoints)
        self._counts = threading.Lock()  # depth and byte counters
        created = not path.exists()
        self._wdb = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
        # auto_vacuum must be chosen before the first table exists.
        self._wdb.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._wdb.execute("PRAGMA journal_mode=WAL")
        # FULL: every commit fsyncs the WAL, so an appended alert survives a power cut, not only a SIGKILL.
        self._wdb.execute("PRAGMA synchronous=FULL")
        self._wdb.execute("PRAGMA wal_autocheckpoint=0")
        # After a checkpoint the WAL is cut back to this, so its size says how much is waiting to be copied.
        self._wdb.execute(f"PRAGMA journal_size_limit={JOURNAL_LIMIT_BYTES}")
        self._wdb.executescript(_SCHEMA)
        if created:
            _fsync_dir(path.parent)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        # Deletes are not fsynced: a lost delete is a republish, which dedup absorbs. A connection of their own,
        # so that a delete or checkpoint waiting on the disk never holds up the drain's reads.
        self._ddb = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
        self._ddb.execute("PRAGMA synchronous=NORMAL")
        self._ddb.execute("PRAGMA wal_autocheckpoint=0")
        self._ddb.execute(f"PRAGMA journal_size_limit={JOURNAL_LIMIT_BYTES}")
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(payload AS BLOB))), 0) FROM outbox"
        ).fetchone()
        qrow = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(payload AS BLOB))), 0) FROM quarantine"
        ).fetchone()
        self._depth = int(row[0])
        self._bytes = int(row[1]) + ROW_OVERHEAD * self._depth
        self._quarantined = int(qrow[0])
        self._quarantine_bytes = int(qrow[1]) + ROW_OVERHEAD * self._quarantined
        self._full = False
        self.rejected = 0
        self.commits = 0

    # --- finding and adopting outbox files --------------------------------------------------------------

    @classmethod
    def claim(cls, directory: Path, quota_bytes: int) -> Outbox:
        """Adopt an outbox in ``directory`` that no live process holds (oldest first), or create a new one."""
        directory.mkdir(parents=True, exist_ok=True)
        for path in sorted(directory.glob("*" + SUFFIX), key=_mtime):
            box = cls.adopt(path, quota_bytes)
            if box is not None:
                log.info("adopted outbox %s with %d pending alert(s)", path, box.depth)
                return box
        path = directory / f"{uuid.uuid4().hex[:16]}{SUFFIX}"
        return cls(path, quota_bytes)

    @classmethod
    def adopt(cls, path: Path, quota_bytes: int) -> Outbox | None:
        """Open ``path`` if no live process holds it and it still exists; None otherwise."""
        fd = _try_lock(path.with_name(path.name + ".lock"))
        if fd is None:
            return None
        if not path.exists():  # drained and deleted by its last holder while we were opening the lock file
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            return None
        try:
            return cls(path, quota_bytes, _lock_fd=fd)
        except sqlite3.Error:
            os.close(fd)
            raise

    @staticmethod
    def orphans(directory: Path, exclude: Path) -> list[Path]:
        """Outbox files in ``directory`` other than ``exclude`` whose holder has died (oldest first)."""
        found = []
        for path in sorted(directory.glob("*" + SUFFIX), key=_mtime):
            if path == exclude:
                continue
            fd = _try_lock(path.with_name(path.name + ".lock"))
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                found.append(path)
        return found

    # --- the queue ------------------------------------------------------------------------------------------

    def append(self, payload: str) -> int:
        """Store ``payload`` durably (fsynced) and return its sequence number. Raises :class:`OutboxFull`.

        Group commit: camera threads appending at the same time share one transaction and one fsync. The
        first to arrive writes everything queued meanwhile; the others wait for that commit.
        """
        size = len(payload.encode("utf-8")) + ROW_OVERHEAD
        with self._counts:  # reserve the bytes, so concurrent appends cannot overrun the quota together
            used = self._bytes + self._quarantine_bytes
            if used + size > self.quota_bytes:
                self._full = True
                self.rejected += 1
                raise OutboxFull(f"outbox {self.path.name} holds {used} of {self.quota_bytes} bytes")
            self._bytes += size
            self._depth += 1
        ticket = _Ticket(payload)
        with self._commit:
            self._queue.append(ticket)
            while not ticket.done:
                if self._writing:
                    self._commit.wait()
                    continue
                self._writing = True
                batch, self._queue = self._queue, []
                self._commit.release()
                try:
                    self._write(batch)
                finally:
                    self._commit.acquire()
                    self._writing = False
                    self._commit.notify_all()
        if ticket.error is not None:  # SQLITE_FULL (the disk is full) or SQLITE_BUSY
            with self._counts:
                self._bytes -= size
                self._depth -= 1
                self._full = True
                self.rejected += 1
            raise OutboxFull(f"outbox {self.path.name}: {ticket.error}") from ticket.error
        return ticket.seq

    def _write(self, batch: list[_Ticket]) -> None:
        now = time.time()
        try:
            self._wdb.execute("BEGIN IMMEDIATE")
            for ticket in batch:
                cur = self._wdb.execute(
                    "INSERT INTO outbox (enqueued_at, payload) VALUES (?, ?)", (now, ticket.payload)
                )
                ticket.seq = cur.lastrowid or 0
            self._wdb.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._wdb.execute("ROLLBACK")
            for ticket in batch:
                ticket.error = exc
        for ticket in batch:
            ticket.done = True

    def peek(self, after: int, limit: int) -> list[OutboxRecord]:
        """Up to ``limit`` records with ``seq > after``, oldest first."""
        with self._mutex:
            rows = self._db.execute(
                "SELECT seq, enqueued_at, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            ).fetchall()
        return [OutboxRecord(int(s), float(t), str(p)) for s, t, p in rows]

    def remove_through(self, seq: int) -> int:
        """Delete every record with ``seq <= seq`` (Redis has them durably); returns how many."""
        with self._dmutex:
            row = self._ddb.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(payload AS BLOB))), 0) FROM outbox WHERE seq <= ?", (seq,)
            ).fetchone()
            count, size = int(row[0]), int(row[1])
            if not count:
                return 0
            self._ddb.execute("DELETE FROM outbox WHERE seq <= ?", (seq,))
            with self._counts:
                self._depth -= count
                self._bytes -= size + ROW_OVERHEAD * count
                if self._full and self._bytes + self._quarantine_bytes <= CLEAR_FRACTION * self.quota_bytes:
                    self._full = False
            free = int(self._ddb.execute("PRAGMA freelist_count").fetchone()[0])
            if free >= VACUUM_PAGES:
                self._ddb.execute("PRAGMA incremental_vacuum")
            self._checkpoint()
            return count

    def maintain(self) -> None:
        """Checkpoint the WAL when it has grown (the drain calls this often, also while Redis is away)."""
        if not self._dmutex.acquire(blocking=False):
            return  # a confirmation is deleting right now and checkpoints itself
        try:
            if self._lock_fd is not None:
                self._checkpoint()
        finally:
            self._dmutex.release()

    def _checkpoint(self) -> None:
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            pages = wal.stat().st_size // 4096
        except FileNotFoundError:
            return
        if pages >= CHECKPOINT_PAGES:
            # PASSIVE: copies what it can without waiting for (or blocking) an appender.
            self._ddb.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def quarantine(self, record: OutboxRecord, reason: str) -> None:
        """Move a record Redis rejected as malformed out of the queue, keeping it for an operator."""
        with self._dmutex:
            self._ddb.execute("BEGIN IMMEDIATE")
            try:
                self._ddb.execute(
                    "INSERT OR REPLACE INTO quarantine VALUES (?, ?, ?, ?, ?)",
                    (record.seq, record.enqueued_at, record.payload, reason[:500], time.time()),
                )
                self._ddb.execute("DELETE FROM outbox WHERE seq = ?", (record.seq,))
                self._ddb.execute("COMMIT")
            except sqlite3.Error:
                self._ddb.execute("ROLLBACK")
                raise
            size = len(record.payload.encode("utf-8")) + ROW_OVERHEAD
            with self._counts:
                self._depth -= 1
                self._bytes -= size
                self._quarantined += 1
                self._quarantine_bytes += size

    def quarantined(self) -> list[tuple[OutboxRecord, str]]:
        """Records Redis rejected, with the reason, oldest first."""
        with self._mutex:
            rows = self._db.execute("SELECT seq, enqueued_at, payload, reason FROM quarantine ORDER BY seq").fetchall()
        return [(OutboxRecord(int(s), float(t), str(p)), str(r)) for s, t, p, r in rows]

    @property
    def depth(self) -> int:
        """Records waiting to be confirmed by Redis."""
        return self._depth

    @property
    def full(self) -> bool:
        """The quota alarm: raised when an alert was refused, cleared below 90 % of the quota."""
        return self._full

    def stats(self) -> OutboxStats:
        """Depth, size, quota and alarm state."""
        with self._counts:
            return OutboxStats(
                depth=self._depth,
                bytes=self._bytes + self._quarantine_bytes,
                quota_bytes=self.quota_bytes,
                full=self._full,
                rejected=self.rejected,
                quarantined=self._quarantined,
            )

    def close(self, delete_if_empty: bool = False) -> bool:
        """Close the file and release the lock; with ``delete_if_empty`` remove a drained file. True if removed."""
        with self._commit:
            while self._writing:
                self._commit.wait()
            return self._close(delete_if_empty)

    def _close(self, delete_if_empty: bool) -> bool:
        removed = False
        with self._mutex:
            if self._lock_fd is None:
                return False
            empty = self._depth == 0 and self._quarantined == 0
            self._db.close()
            self._wdb.close()
            with self._dmutex:
                self._ddb.close()
            if delete_if_empty and empty:
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        self.path.with_name(self.path.name + suffix).unlink()
                with contextlib.suppress(FileNotFoundError):
                    self._lock_path.unlink()
                removed = True
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None
        return removed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")
