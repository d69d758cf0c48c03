"""ipycam, a third-party virtual ONVIF camera, as a test peer: its own venv, started per test, loopback only.

ipycam pulls opencv-python, which clashes with the project's opencv-python-headless, so it lives in
``var/ipycam-venv`` (created here on first use: ``python3 -m venv`` + ``pip install ipycam``). It is
started through ``tests/ipycam_launcher.py``, which removes its WS-Discovery responder (no multicast
leaves the machine) and binds its servers to 127.0.0.1. Its RTSP server runs Debian's ``ffmpeg`` per
session. Each camera is ~100 MB of memory and ~1 s to start.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.synthetic import standard_clip
from tests.peers import free_port

REPO = Path(__file__).resolve().parent.parent
IPYCAM_VENV = REPO / "var" / "ipycam-venv"
IPYCAM_PYTHON = IPYCAM_VENV / "bin" / "python"
IPYCAM_REQUIREMENT = "ipycam==1.3.0"
LAUNCHER = Path(__file__).resolve().parent / "ipycam_launcher.py"
FFMPEG_APT = "apt-get install -y --no-install-recommends ffmpeg"
READY_TIMEOUT_S = 30.0


def ensure_ipycam_venv() -> Path:
    """The venv's python, creating the venv (about 10 s, needs PyPI) the first time."""
    if IPYCAM_PYTHON.exists():
        check = subprocess.run([str(IPYCAM_PYTHON), "-c", "import ipycam"], capture_output=True, check=False)
        if check.returncode == 0:
            return IPYCAM_PYTHON
    base = shutil.which("python3") or sys.executable
    IPYCAM_VENV.parent.mkdir(parents=True, exist_ok=True)
    steps = (
        [base, "-m", "venv", "--clear", str(IPYCAM_VENV)],
        [str(IPYCAM_PYTHON), "-m", "pip", "install", "-q", IPYCAM_REQUIREMENT],
    )
    for argv in steps:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"creating {IPYCAM_VENV} failed at {' '.join(argv)}:\n{result.stderr[-2000:]}")
    return IPYCAM_PYTHON


def ffmpeg_missing() -> str | None:
    """None when ffmpeg is on PATH, else the command that installs it."""
    return None if shutil.which("ffmpeg") else FFMPEG_APT


class IpyCam:
    """One ipycam process: ONVIF on ``onvif_port``, RTSP main (``main``) and sub (``sub``) streams.

    Empty ``username``/``password`` turn authentication off. ``clock_offset_s`` runs the camera's clock
    that far off. ``discovery`` keeps its WS-Discovery responder: only with ``netns`` (a loopback-only
    network namespace the camera runs in). Starts on construction; ``stop()`` ends it and its ffmpeg
    children (they share its process group).
    """

    def __init__(
        self,
        clip: Path,
        *,
        username: str = "",
        password: str = "",
        main: tuple[int, int] = (640, 360),
        sub: tuple[int, int] = (320, 180),
        fps: int = 10,
        clock_offset_s: float = 0.0,
        discovery: bool = False,
        netns: str | None = None,
        name: str = "Virtual Camera",
    ) -> None:
        if discovery and netns is None:
            raise ValueError("the WS-Discovery responder multicasts: only inside a loopback-only network namespace")
        clip = Path(clip).resolve()  # ipycam runs in its own folder
        if not clip.is_file():
            raise FileNotFoundError(clip)
        self.python = ensure_ipycam_venv()
        self.username, self.password = username, password
        self.onvif_port, self.rtsp_port = free_port(), free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="ipycam-"))
        config = {
            "name": name,
            "local_ip": "127.0.0.1",
            "onvif_port": self.onvif_port,
            "rtsp_port": self.rtsp_port,
            "web_port": free_port(),
            "go2rtc_api_port": free_port(),
            "main_width": main[0],
            "main_height": main[1],
            "main_fps": fps,
            "main_bitrate": "600K",
            "sub_width": sub[0],
            "sub_height": sub[1],
            "sub_fps": fps,
            "sub_bitrate": "250K",
            "username": username,
            "password": password,
            "hw_accel": "cpu",
            "show_timestamp": False,
            "recording_enabled": False,
        }
        (self._dir / "cam.json").write_text(json.dumps(config))
        argv = [str(self.python), str(LAUNCHER)]
        if discovery:
            argv.append("--discovery")
        if clock_offset_s:
            argv += ["--clock-offset", str(clock_offset_s)]
        argv += ["--", "--config", str(self._dir / "cam.json"), "--source", str(clip), "--log-level", "WARNING"]
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]
        self._netns = netns
        self._log = (self._dir / "ipycam.log").open("wb")
        # Own process group: ipycam starts an ffmpeg per RTSP session, which must end with it.
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self._dir,
            start_new_session=True,
        )
        self._wait_ready()

    @property
    def onvif_url(self) -> str:
        """The device service URL."""
        return f"http://127.0.0.1:{self.onvif_port}/onvif/device_service"

    def log_text(self) -> str:
        """What ipycam printed so far."""
        return (self._dir / "ipycam.log").read_text(errors="replace")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"ipycam exited with {self._proc.returncode}:\n{self.log_text()[-3000:]}")
            if "IP Camera is running" in self.log_text() and (self._netns or self._accepts()):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"ipycam not ready within {READY_TIMEOUT_S} s:\n{self.log_text()[-3000:]}")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.onvif_port), timeout=0.5):
                return True
        except OSError:
            return False

    def pause(self) -> None:
        """Freeze the camera (SIGSTOP to its group): connections are accepted, nothing is answered."""
        if self._proc is not None:
            os.killpg(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Undo ``pause()``."""
        if self._proc is not None:
            os.killpg(self._proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        """End the camera and its ffmpeg children."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGCONT)
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
        with_children = True
        while with_children:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                with_children = False
            else:
                time.sleep(0.05)
        self._log.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> IpyCam:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def ipycam_clip(clip_dir: Path) -> Path:
    """The walker scene as MP4 (ipycam reads files with OpenCV and loops them)."""
    return standard_clip("walker", clip_dir, container="mp4")


@pytest.fixture(scope="session")
def need_ipycam() -> None:
    """Fail (not skip) with the fix when ipycam cannot run: `make test` installs what it needs."""
    missing = ffmpeg_missing()
    if missing is not None:
        pytest.fail(f"ipycam's RTSP server needs Debian's ffmpeg: run `make system-deps` or: {missing}")
    try:
        ensure_ipycam_venv()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"cannot set up ipycam's venv: {exc}")


@pytest.fixture(scope="session")
def open_camera(need_ipycam: None, ipycam_clip: Path) -> Iterator[IpyCam]:
    """An ipycam without authentication, shared by the session (do not pause or stop it)."""
    with IpyCam(ipycam_clip) as cam:
        yield cam


@pytest.fixture(scope="session")
def locked_camera(need_ipycam: None, ipycam_clip: Path) -> Iterator[IpyCam]:
    """An ipycam that wants user 'admin', password 's3cret pass', shared by the session (do not pause it)."""
    with IpyCam(ipycam_clip, username="admin", password="s3cret pass") as cam:
        yield cam
