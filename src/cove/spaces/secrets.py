"""Space secrets at rest: Fernet (AES-128-CBC + HMAC) with a key kept in the data folder (``spaces.key``, 0600)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


def _key(data: Path) -> bytes:
    path = data / "spaces.key"
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    data.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    tmp = path.with_name(f".spaces.key.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    with contextlib.suppress(FileExistsError):
        os.link(tmp, path)  # the first writer wins; others read its key
    tmp.unlink()
    return path.read_bytes().strip()


def encrypt(data: Path, value: str) -> str:
    return Fernet(_key(data)).encrypt(value.encode()).decode()


def decrypt(data: Path, token: str) -> str | None:
    """The value, or None when the key changed (a restored data folder without its key)."""
    try:
        return Fernet(_key(data)).decrypt(token.encode()).decode()
    except InvalidToken:
        return None
