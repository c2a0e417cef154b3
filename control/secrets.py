"""Encryption at rest for provider credentials, and the secret key's life cycle.

AES-256-GCM with a random 96-bit nonce per value; the owning row's identity (e.g. ``channel:ch_1``)
is bound in as associated data, so a ciphertext copied onto another row does not decrypt. Each
ciphertext names the key it was made with (the first 4 bytes of SHA-256 of the key), which is what
lets a node hold the new and the previous key during ``converse secrets rotate``.

Format (text, storable in any column): ``v1.<key id hex>.<base64url(nonce || ciphertext+tag)>``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import pathlib
import secrets as _random
from typing import Iterable

import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.exceptions import InvalidTag

KEY_BYTES = 32
NONCE_BYTES = 12
PENDING_SUFFIX = ".new"      # rotate writes the new key here first, then renames it into place


class SecretKeyError(Exception):
    """The secret key is missing, unreadable or not a key."""


class DecryptError(Exception):
    """A stored secret does not decrypt under any key we hold (wrong key, tampered, wrong row)."""


def generate_key() -> str:
    return base64.urlsafe_b64encode(_random.token_bytes(KEY_BYTES)).decode("ascii")


def parse_key(text: str) -> bytes:
    text = text.strip()
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise SecretKeyError("the secret key is not base64url text "
                             "(generate one with `converse secrets generate`)") from None
    if len(key) != KEY_BYTES:
        raise SecretKeyError(f"the secret key must be {KEY_BYTES} bytes of base64url "
                             f"(got {len(key)} bytes); generate one with `converse secrets generate`")
    return key


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def write_key_file(path: str | os.PathLike, key_text: str) -> None:
    """Create ``path`` with mode 0600 (never world-readable, not even briefly) and write the key."""
    p = pathlib.Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (key_text + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, p)


def load_key_file(path: str | os.PathLike, *, create: bool = True) -> bytes:
    p = pathlib.Path(path)
    if not p.exists():
        if not create:
            raise SecretKeyError(f"secret key file {p} does not exist")
        write_key_file(p, generate_key())
    try:
        text = p.read_text("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretKeyError(f"cannot read secret key file {p}: {exc}") from None
    try:
        return parse_key(text)
    except SecretKeyError as exc:
        raise SecretKeyError(f"secret key file {p} is not a valid key: {exc}") from None


def pending_keys(path: str | os.PathLike) -> tuple[bytes, ...]:
    """A rotation interrupted after committing but before renaming leaves ``<key>.new``: keep it
    usable for decryption so no row becomes unreadable."""
    p = pathlib.Path(str(path) + PENDING_SUFFIX)
    if not p.exists():
        return ()
    try:
        return (parse_key(p.read_text("ascii")),)
    except (OSError, UnicodeDecodeError, SecretKeyError):
        return ()


def derive_token_secret(key: bytes) -> bytes:
    """Every node holding the same secret key derives the same token secret."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"converse-token").derive(key)


class SecretBox:
    """Encrypts with the current key; decrypts with the current or any previous key."""

    def __init__(self, key: bytes, previous: Iterable[bytes] = ()):
        self.key_id = key_id(key)
        self._enc = AESGCM(key)
        self._keys = {key_id(k): AESGCM(k) for k in previous}
        self._keys[self.key_id] = self._enc

    def encrypt(self, plaintext: bytes, aad: bytes) -> str:
        nonce = _random.token_bytes(NONCE_BYTES)
        ct = self._enc.encrypt(nonce, plaintext, aad)
        return f"v1.{self.key_id}.{base64.urlsafe_b64encode(nonce + ct).decode('ascii')}"

    def decrypt(self, token: str, aad: bytes) -> bytes:
        try:
            version, kid, body = token.split(".", 2)
            raw = base64.urlsafe_b64decode(body)
        except (ValueError, binascii.Error):
            raise DecryptError("stored secret is malformed") from None
        if version != "v1" or kid not in self._keys or len(raw) < NONCE_BYTES + 16:
            raise DecryptError(f"stored secret was made with key {kid}, which this node does not hold")
        try:
            return self._keys[kid].decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
        except InvalidTag:
            raise DecryptError("stored secret failed authentication (wrong key or row)") from None

    def is_current(self, token: str) -> bool:
        return token.startswith(f"v1.{self.key_id}.")

    def encrypt_json(self, obj, aad: bytes) -> str:
        return self.encrypt(msgspec.json.encode(obj), aad)

    def decrypt_json(self, token: str, aad: bytes):
        return msgspec.json.decode(self.decrypt(token, aad))


def mask_value(value: str) -> str:
    """Show the last 4 characters of long values only, so the operator can recognise which
    credential is stored without the response ever containing it."""
    value = str(value)
    return "••••" + value[-4:] if len(value) >= 16 else "••••"


def mask(creds: dict) -> dict:
    return {k: mask_value(v) for k, v in creds.items()}
