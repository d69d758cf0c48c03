"""One keyframe of a camera's main (full-resolution) stream, for alert snapshots; bounded in threads, queue and time.

Workers watch the cameras' detection streams (substreams, typically 640x360). An alert's first snapshot is the
detection frame, written at once; the case system wants the main stream's resolution, so the sink then asks
:class:`MainStreamGrabber` for one keyframe of the main stream and replaces the snapshot with it.

A grab opens the stream with the camera reader's own options (:class:`ingest.reader.StreamReader`: RTSP over
TCP, short probing, open and read timeouts, one decoder thread), waits for the first keyframe, decodes only
that one (``skip_frame='NONKEY'``, non-key packets never reach the decoder) and closes the container, also on
errors. Everything is bounded: a few threads, a short queue (a request that does not fit is dropped and
counted), one grab per camera at a time (later requests of that camera share it), and a request that waited
too long is dropped because its keyframe would no longer show the alert's moment.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import av

from ingest.failures import classify
from ingest.reader import ReaderOptions, StreamReader

log = logging.getLogger(__name__)

# Grabs running at once per worker process. A 1080p main stream costs about 25 ms of CPU to open (probing
# decodes a frame) and 30-40 ms to decode its keyframe (measured over loopback RTSP: 80 ms a grab in all), plus
# 20 ms to mask, draw and encode the JPEG. Two at a time stay far below one of a 2-core machine's cores
# whatever the alert rate, and the camera threads keep the rest. A grab's wall time is mostly waiting (0.5 s
# of probing, then up to a GOP for the keyframe: 0.6 s measured with a 1 s GOP), so two threads still do
# two or three grabs per second.
GRAB_THREADS = 2
# Cameras waiting for a grab thread. At 0.6 to 1.5 s per grab over two threads, the last of 8 starts 2.5 to
# 6 s after it was asked for, around MAX_QUEUE_WAIT_S: a longer queue would only hold requests that expire.
QUEUE_SIZE = 8
# A request still waiting after this long is dropped: the keyframe would show the scene seconds after the
# alert (the person who triggered it may be gone), and the detection frame already stored shows the moment.
MAX_QUEUE_WAIT_S = 5.0
# After the open, the main stream gets this long to send a keyframe. The README asks installers for one every
# 1-2 s and the health warns above 4 s (keyframe_warn_s): a stream slower than that keeps the detection
# snapshot rather than hold a grab thread for a whole long GOP.
KEYFRAME_WAIT_S = 4.0
# Alerts of one camera that may share one grab: events of several zones starting together. A camera has a
# handful of zones; more waiters than this means a detector gone wild, and they are dropped.
MAX_WAITERS = 8
# How long close() waits for running grabs: they stop at their next packet, or at the open timeout.
CLOSE_JOIN_S = 2.0


class GrabError(Exception):
    """No keyframe from the main stream. The message is safe to log: it never carries the URL's credentials."""


def grab_keyframe(
    url: str,
    options: ReaderOptions,
    *,
    keyframe_wait_s: float = KEYFRAME_WAIT_S,
    stop: threading.Event | None = None,
) -> av.VideoFrame:
    """The first keyframe of the stream at ``url`` (credentials included, if any), decoded at full resolution.

    Opens with the reader's options, feeds only keyframes to a single-threaded decoder and always closes the
    container. Raises :class:`GrabError` (message without credentials) when the stream cannot be opened or
    read, ends, or sends no decodable keyframe within ``keyframe_wait_s`` after the open.
    """
    reader = StreamReader(url, options)
    started = time.monotonic()
    try:
        reader.open()
    except (av.FFmpegError, OSError) as exc:
        failure = classify(
            exc, opening=True, elapsed_s=time.monotonic() - started, open_timeout_s=options.socket_timeout_s
        )
        raise GrabError(failure.message) from None  # the cause's text holds the URL: not chained
    try:
        return _first_keyframe(reader, time.monotonic() + keyframe_wait_s, keyframe_wait_s, stop)
    except (av.FFmpegError, OSError) as exc:
        raise GrabError(classify(exc).message) from None
    finally:
        reader.close()


def _first_keyframe(
    reader: StreamReader, deadline: float, wait_s: float, stop: threading.Event | None
) -> av.VideoFrame:
    ctx = reader.video.codec_context
    ctx.skip_frame = "NONKEY"  # belt and braces: only keyframes are sent to it anyway
    for packet, _ in reader.packets():
        if stop is not None and stop.is_set():
            raise GrabError("stopped before a keyframe arrived")
        if time.monotonic() > deadline:
            raise GrabError(f"no keyframe within {wait_s:g} s: the main stream's keyframe interval is too long")
        if not packet.is_keyframe:
            continue
        frames = ctx.decode(packet)
        if not frames:
            # A decoder that reorders (B-frames) holds the picture back; draining hands it out.
            frames = ctx.decode(None)
        good = [f for f in frames if not f.is_corrupt]
        if good:
            return good[0]
        ctx.flush_buffers()  # corrupt or drained: reset, and try the next keyframe
    raise GrabError("the stream ended before a keyframe")


@dataclass(frozen=True, slots=True)
class GrabStats:
    """What the grabber did since it was made."""

    submitted: int  # grabs queued
    joined: int  # requests that shared a grab already pending for their camera
    dropped: int  # requests refused: queue full, or too many waiting on one camera
    expired: int  # grabs dropped after waiting longer than MAX_QUEUE_WAIT_S
    grabbed: int  # grabs that delivered a keyframe (their callbacks have run)
    failed: int  # grabs that ended without one (their callbacks have run)
    pending: int  # cameras queued or being grabbed now
    running: int  # grabs in progress now


FrameCallback = Callable[[av.VideoFrame], None]
FailureCallback = Callable[[str], None]


@dataclass(slots=True)
class _Job:
    url: str
    asked_at: float
    waiters: list[tuple[FrameCallback, FailureCallback]] = field(default_factory=list)


class MainStreamGrabber:
    """A small fixed pool of threads grabbing main-stream keyframes; thread-safe, never blocks its callers.

    Callbacks run on a grab thread: ``on_frame(frame)`` with the decoded keyframe, or ``on_failure(message)``
    with a message that carries no credentials. They should not raise; one that does is logged.
    """

    def __init__(
        self,
        options: ReaderOptions,
        *,
        threads: int = GRAB_THREADS,
        queue_size: int = QUEUE_SIZE,
        max_wait_s: float = MAX_QUEUE_WAIT_S,
        keyframe_wait_s: float = KEYFRAME_WAIT_S,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        # Files are read once, as fast as possible: a demo camera's main stream must not be paced or looped.
        self._options = replace(options, realtime_files=False)
        self._threads_wanted = threads
        self._queue_size = queue_size
        self._max_wait_s = max_wait_s
        self._keyframe_wait_s = keyframe_wait_s
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._pending: dict[str, _Job] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._submitted = self._joined = self._dropped = self._expired = 0
        self._grabbed = self._failed = self._running = 0

    def submit(self, key: str, url: str, on_frame: FrameCallback, on_failure: FailureCallback) -> bool:
        """Ask for a keyframe of ``url`` for camera ``key``; False (counted) when the request was dropped.

        A request for a camera whose grab is still queued or running shares that grab.
        """
        with self._cond:
            if self._stop.is_set():
                self._dropped += 1
                return False
            job = self._pending.get(key)
            if job is not None:
                if job.url != url or len(job.waiters) >= MAX_WAITERS:
                    self._dropped += 1
                    return False
                job.waiters.append((on_frame, on_failure))
                self._joined += 1
                return True
            if len(self._queue) >= self._queue_size:
                self._dropped += 1
                return False
            self._pending[key] = _Job(url, time.monotonic(), [(on_frame, on_failure)])
            self._queue.append(key)
            self._submitted += 1
            self._start_threads()
            self._cond.notify()
            return True

    def _start_threads(self) -> None:
        # Started on the first request: most workers' tests and cameras without main streams never need them.
        while len(self._threads) < self._threads_wanted:
            thread = threading.Thread(target=self._run, name=f"mainstream-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stats(self) -> GrabStats:
        """Counters and current load."""
        with self._cond:
            return GrabStats(
                submitted=self._submitted,
                joined=self._joined,
                dropped=self._dropped,
                expired=self._expired,
                grabbed=self._grabbed,
                failed=self._failed,
                pending=len(self._pending),
                running=self._running,
            )

    def close(self, timeout: float = CLOSE_JOIN_S) -> None:
        """Drop queued requests (their callbacks are not called), stop running grabs at their next packet, and
        wait up to ``timeout`` seconds for the threads."""
        with self._cond:
            self._stop.set()
            for key in self._queue:
                self._pending.pop(key, None)
            self._queue.clear()
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set():
                    return
                key = self._queue.popleft()
                job = self._pending[key]
                self._running += 1
            frame: av.VideoFrame | None = None
            waited = time.monotonic() - job.asked_at
            if waited > self._max_wait_s:
                error = f"dropped after waiting {waited:.1f} s for a grab thread (too many alerts at once)"
            else:
                try:
                    frame = grab_keyframe(
                        job.url, self._options, keyframe_wait_s=self._keyframe_wait_s, stop=self._stop
                    )
                    error = ""
                except GrabError as exc:
                    error = str(exc)
            with self._cond:
                del self._pending[key]  # from here on, a new request of this camera starts a new grab
                # Grabs cut short by close() fail for no fault of the camera: nobody needs to hear about them.
                waiters = list(job.waiters) if frame is not None or not self._stop.is_set() else []
            for on_frame, on_failure in waiters:
                try:
                    if frame is not None:
                        on_frame(frame)
                    else:
                        on_failure(error)
                except Exception:  # last resort: a faulty callback must not take a grab thread with it
                    log.exception("main-stream grab of camera %s: callback failed", key)
            with self._cond:  # counted once its callbacks have run, so a counter seen means the work is done
                self._running -= 1
                if frame is not None:
                    self._grabbed += 1
                elif waited > self._max_wait_s:
                    self._expired += 1
                else:
                    self._failed += 1
