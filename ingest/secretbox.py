"""Camera passwords at rest: Fernet (AES-128-CBC + HMAC-SHA256) with one key per installation.

The key lives in a file, not in an environment variable: environment variables leak into process
listings, crash reports and child processes. ``secret_key_file`` names it; unset, ``<data_dir>/secret.key``
is created with mode 0600 on first start. Every host that writes or reads camera passwords (API, workers,
the CLI) needs the same file. The registry records the key's fingerprint with the first stored password,
so a host with a different key is refused instead of writing passwords nobody else can read.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from config.settings import Settings

log = logging.getLogger(__name__)

KEY_FILE_NAME = "secret.key"


class SecretKeyError(RuntimeError):
    """The key file is missing, unreadable, malformed, or not the key the registry's passwords use."""


class SecretBox:
    """Encrypts and decrypts camera passwords. ``repr`` shows the key's fingerprint only."""

    __slots__ = ("_fernet", "fingerprint")

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError:
            raise SecretKeyError(
                "the secret key is not a Fernet key (32 url-safe base64-encoded bytes); create one with "
                '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`'
            ) from None
        # A fingerprint, not the key: safe to store in Redis and to print.
        self.fingerprint = hashlib.sha256(b"sharpeyes-key-id:" + key.strip()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"SecretBox(fingerprint={self.fingerprint!r})"

    def encrypt(self, plain: str) -> str:
        """Ciphertext of ``plain`` (a fresh random IV each time, so equal passwords encrypt differently)."""
        return self._fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The plain text of ``token``; raises :class:`SecretKeyError` when this key did not encrypt it."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            raise SecretKeyError(
                f"a stored camera password cannot be decrypted with the key {self.fingerprint}: this host's "
                "secret_key_file differs from the one the password was stored with"
            ) from None


def key_path(settings: Settings) -> Path:
    """Where the key file is (or will be created)."""
    return settings.secret_key_file or settings.data_dir / KEY_FILE_NAME


def load_secret_box(settings: Settings) -> SecretBox:
    """The installation's box; creates the key file (mode 0600) on first start when the default path is used."""
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
        key = path.read_bytes().strip()
    except OSError as exc:
        raise SecretKeyError(f"cannot read the secret key file {str(path)!r}: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("secret key file %s is readable by other users (mode %o): chmod 600 it", path, mode & 0o777)
    return SecretBox(key)


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
