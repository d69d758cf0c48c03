"""Camera passwords at rest: Fernet (AES-128-CBC + HMAC-SHA256), with key rotation.

The keys live in a file, not in an environment variable: environment variables leak into process
listings, crash reports and child processes. ``secret_key_file`` names it; unset, ``<data_dir>/secret.key``
is created with mode 0600 on first start. Every host that writes or reads camera passwords (API, workers,
the CLI) needs the same file.

The file holds one key per line, **newest first** (blank lines and ``#`` comments are ignored). Any of them
decrypts (MultiFernet); the registry records which one passwords are encrypted with, and `sharpeyes cameras
rekey` moves every password to the newest, after which the older lines can be deleted. One file rather than a
setting per previous key: hosts are updated by copying one file, and a host never holds half a rotation.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from config.settings import Settings

log = logging.getLogger(__name__)

KEY_FILE_NAME = "secret.key"


class SecretKeyError(RuntimeError):
    """The key file is missing, unreadable, malformed, or not the key the registry's passwords use."""


NOT_A_KEY = (
    "is not a Fernet key (32 url-safe base64-encoded bytes); create one with "
    '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`'
)


def fingerprint(key: bytes) -> str:
    """A key's fingerprint: safe to store in Redis and to print, unlike the key."""
    return hashlib.sha256(b"sharpeyes-key-id:" + key.strip()).hexdigest()[:16]


class SecretBox:
    """Encrypts and decrypts camera passwords with one or more keys, newest first. ``repr`` shows fingerprints only.

    ``fingerprint`` is the newest key's; ``fingerprints`` are all of them, newest first.
    """

    __slots__ = ("_fernets", "_multi", "fingerprint", "fingerprints")

    def __init__(self, keys: bytes | Sequence[bytes]) -> None:
        keys = [keys] if isinstance(keys, bytes) else list(keys)
        if not keys:
            raise SecretKeyError("no secret key given")
        fernets: dict[str, Fernet] = {}
        for position, key in enumerate(keys, 1):
            try:
                fernets.setdefault(fingerprint(key), Fernet(key.strip()))
            except ValueError:
                where = "the secret key" if len(keys) == 1 else f"secret key {position} (newest first)"
                raise SecretKeyError(f"{where} {NOT_A_KEY}") from None
        self._fernets = fernets
        self._multi = MultiFernet(list(fernets.values()))
        self.fingerprints = tuple(fernets)
        self.fingerprint = self.fingerprints[0]

    def __repr__(self) -> str:
        return f"SecretBox(fingerprints={self.fingerprints!r})"

    def encrypt(self, plain: str, key: str | None = None) -> str:
        """Ciphertext of ``plain`` with the key of fingerprint ``key`` (default: the newest). A fresh random IV
        each time, so equal passwords encrypt differently."""
        fernet = self._fernets[key or self.fingerprint]
        return fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The plain text of ``token`` (any of the keys); :class:`SecretKeyError` when none of them encrypted it."""
        try:
            return self._multi.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            raise SecretKeyError(
                f"a stored camera password cannot be decrypted with the key(s) {', '.join(self.fingerprints)}: this "
                "host's secret_key_file lacks the key the password was stored with"
            ) from None

    def key_of(self, token: str) -> str | None:
        """The fingerprint of the key that encrypted ``token``, or None if none of this box's did."""
        for name, fernet in self._fernets.items():
            try:
                fernet.decrypt(token.encode("ascii"))
            except (InvalidToken, ValueError):
                continue
            return name
        return None


def key_path(settings: Settings) -> Path:
    """Where the key file is (or will be created)."""
    return settings.secret_key_file or settings.data_dir / KEY_FILE_NAME


def load_secret_box(settings: Settings) -> SecretBox:
    """The installation's box (every key of the file, newest first); creates the key file (mode 0600) on first
    start when the default path is used."""
    path = key_path(settings)
    if not path.exists():
        if settings.secret_key_file is not None:
            raise SecretKeyError(
                f"secret_key_file {str(path)!r} does not exist: copy the key file from the first host, "
                "or unset SHARPEYES_SECRET_KEY_FILE on a single-host installation"
            )
        _create_key_file(path)
    try:
        mode = path.stat().st_mode
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise SecretKeyError(f"cannot read the secret key file {str(path)!r}: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("secret key file %s is readable by other users (mode %o): chmod 600 it", path, mode & 0o777)
    keys: list[bytes] = []
    for number, line in enumerate(lines, 1):
        key = line.strip()
        if not key or key.startswith(b"#"):
            continue
        try:
            Fernet(key)
        except ValueError:
            raise SecretKeyError(f"line {number} of the secret key file {str(path)!r} {NOT_A_KEY}") from None
        keys.append(key)
    if not keys:
        raise SecretKeyError(f"the secret key file {str(path)!r} holds no key (one per line, newest first)")
    return SecretBox(keys)


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    # Written to a private temporary file first and then linked into place: the key file appears complete or
    # not at all, and when two processes start at once the first link wins and the other reads that key.
    fd, tmp_name = tempfile.mkstemp(prefix=".secret-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(key + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_name, 0o600)
        try:
            os.link(tmp_name, path)
        except FileExistsError:
            return
    finally:
        os.unlink(tmp_name)
    log.warning(
        "generated a new secret key for camera passwords at %s (mode 0600). Back it up: without it the "
        "stored camera passwords cannot be read. Hosts sharing this registry need the same file "
        "(SHARPEYES_SECRET_KEY_FILE).",
        path,
    )
