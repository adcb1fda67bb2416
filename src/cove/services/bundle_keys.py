"""Ed25519 keys that sign `cove bundle` files: the private key signs on the connected side, the public key
alone verifies on the other (`cryptography`). Private keys are PKCS#8 PEM files (mode 0600); public keys
are one OpenSSH line (``ssh-ed25519 AAAA… cove-bundle``), easy to paste into a ticket or a config repo."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cove.errors import BadRequest


def public_path(private: Path) -> Path:
    """Where `keygen` puts the public half of `private`."""
    return private.with_name(private.name + ".pub")


def keygen(private: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write a new key pair: `private` (0600, created so, never readable by others) and `private.pub`."""
    pub = public_path(private)
    if not force and (private.exists() or pub.exists()):
        raise BadRequest(f"{private} or {pub} exists already; pass --force to replace the key pair")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    private.parent.mkdir(parents=True, exist_ok=True)
    tmp = private.with_name(f".{private.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(tmp, 0o600)
    os.replace(tmp, private)
    pub.write_bytes(line + b" cove-bundle\n")
    return private, pub


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise BadRequest(f"Cannot read the bundle signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BadRequest(f"{path} is not an Ed25519 private key (make one with `cove bundle keygen`)")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
        key = (serialization.load_ssh_public_key(data) if data.startswith(b"ssh-")
               else serialization.load_pem_public_key(data))
    except (OSError, ValueError, TypeError) as exc:
        raise BadRequest(f"Cannot read the public key {path}: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BadRequest(f"{path} is not an Ed25519 public key")
    return key


def verify(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
