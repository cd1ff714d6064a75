"""Encryption of the secrets the database keeps: upstream providers' API keys and end users'
own provider keys (BYOK).

Fernet tokens (AES-CBC with an HMAC, from `cryptography`) are authenticated, so a token altered
in the database, or made under another key, fails to decrypt instead of yielding garbage.

The key comes from TOLLGATE_SECRET_KEY. Several comma-separated keys allow rotation: the first
encrypts, any of them decrypts, and `rotate` re-encrypts a token under the first. In dev, with
no key configured, one is generated once and kept in `<data_dir>/secret.key` (mode 0600), so a
restart can still decrypt what was stored. Anywhere else without a key, nothing can be stored:
`encrypt` raises SecretKeyMissing, which services answer with a ValidationFailed.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from tollgate.config import Settings

log = logging.getLogger(__name__)

KEY_FILE = "secret.key"
MAKE_A_KEY = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)


class SecretKeyMissing(Exception):
    """No key is configured, so a secret cannot be stored."""

    def __init__(self) -> None:
        super().__init__(
            "TOLLGATE_SECRET_KEY is not set, so secrets cannot be stored; make a key with "
            + MAKE_A_KEY
        )


class DecryptionFailed(Exception):
    """A stored secret cannot be read with the configured keys (removed, or never set)."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


def parse_keys(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _fernet(key: str, where: str) -> Fernet:
    try:
        return Fernet(key.encode())
    except ValueError:
        # The message says where the key came from, never the value: that is the secret.
        raise ValueError(
            f"{where} is not a Fernet key (32 url-safe base64 bytes); make one with {MAKE_A_KEY}"
        ) from None


class SecretBox:
    """Encrypts with the first key and decrypts with any. Without keys it can decrypt nothing
    and refuses to encrypt."""

    def __init__(self, keys: Sequence[str] = ()) -> None:
        fernets = [
            _fernet(key, f"TOLLGATE_SECRET_KEY (key {n})") for n, key in enumerate(keys, start=1)
        ]
        self._fernet = MultiFernet(fernets) if fernets else None

    @property
    def can_encrypt(self) -> bool:
        return self._fernet is not None

    def encrypt(self, plaintext: str) -> str:
        if self._fernet is None:
            raise SecretKeyMissing
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        if self._fernet is None:
            raise DecryptionFailed("no TOLLGATE_SECRET_KEY is configured")
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise DecryptionFailed("made under a key that is not configured, or altered") from None

    def rotate(self, token: str) -> str:
        """The same secret, encrypted under the first key (for re-encrypting stored rows after
        a new key was put in front)."""
        if self._fernet is None:
            raise SecretKeyMissing
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise DecryptionFailed("made under a key that is not configured, or altered") from None


def load(settings: Settings) -> SecretBox:
    if settings.secret_key:
        return SecretBox(parse_keys(settings.secret_key))
    if settings.is_dev:
        return SecretBox([dev_key(settings.data_dir)])
    return SecretBox()


@functools.lru_cache(maxsize=16)
def for_settings(settings: Settings) -> SecretBox:
    """One box per settings, so the dev key file is read once per process."""
    return load(settings)


def dev_key(data_dir: Path) -> str:
    """The key kept in `<data_dir>/secret.key`, created on first use. Two processes starting
    together agree on one key: each writes a private temporary file and links it into place,
    which fails for all but the first."""
    path = data_dir / KEY_FILE
    if path.exists():
        return _read_key(path)
    data_dir.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    temporary = data_dir / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(key + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return _read_key(path)
    finally:
        temporary.unlink(missing_ok=True)
    log.warning(
        "generated a secret key in %s: back it up with the data, and set TOLLGATE_SECRET_KEY "
        "outside dev",
        path,
    )
    return key


def _read_key(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s can be read by other users (mode %o); chmod 600 it", path, mode)
    key = path.read_text().strip()
    # Checked here so a damaged file fails at start-up with its path, not at first use.
    _fernet(key, str(path))
    return key
