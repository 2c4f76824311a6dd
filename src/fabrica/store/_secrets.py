"""Sensitive values encrypted at rest (SPEC section 10, ``serve --encryption-key``).

With keys, the store writes each sensitive spec value as an *envelope*: the string
``fernet:v1:`` followed by a Fernet token of the value's JSON (so a value of any type
round-trips). Fernet (AES-128-CBC with HMAC-SHA256) authenticates as it encrypts: a wrong
key fails to open a token instead of yielding garbage. Several keys, comma-separated, allow
rotation: the first encrypts, every one decrypts (`MultiFernet`), and a value is encrypted
with the first key the next time its resource is written.

Reading is tolerant of the past and strict about the present: a value stored in the clear
(written before encryption was turned on) is read as it is and encrypted on its next write;
an envelope that no key opens is an error, never a silent empty value.

Whether storage holds encrypted values is recorded in storage itself, in one document of the
collection `MARKER_COLLECTION`: written at start by the first service with keys whose kinds
have sensitive fields, it holds a token of a known text. `check_storage_key` reads it at
start: a service without keys, or with keys none of which opens it, refuses to start with a
message saying so, rather than failing on each read later. A scan of every resource for
envelopes would answer the same question, but at a cost that grows with the storage.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any, Final

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ..resource import Resource, new_uid, sensitive_fields
from ..storage import AlreadyExists, Document, Invalid, NotFound, Storage

__all__ = [
    "ENVELOPE_PREFIX",
    "MARKER_COLLECTION",
    "Encryption",
    "EncryptionError",
    "check_storage_key",
    "is_envelope",
    "open_document",
    "seal_document",
]

log = logging.getLogger("fabrica.store")

ENVELOPE_PREFIX: Final = "fernet:v1:"
#: The collection of the marker document (no kind's plural: it has a dash no kind makes).
MARKER_COLLECTION: Final = "fabrica-encryption"
_MARKER_NAME: Final = "encryption"
_MARKER_TEXT: Final = b"fabrica sensitive values"
AnyResource = Resource[Any, Any]


class EncryptionError(RuntimeError):
    """Keys and storage do not agree: no key given for encrypted values, or none that opens
    them. A service refuses to start with it; a read that meets it answers 500."""


class Encryption:
    """The Fernet keys of ``--encryption-key``: the first encrypts, each decrypts."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("no encryption key given")
        fernets = []
        for index, key in enumerate(keys, 1):
            try:
                fernets.append(Fernet(key.strip().encode("ascii")))
            except (ValueError, UnicodeEncodeError):
                raise ValueError(
                    f"encryption key {index} of {len(keys)} is not a Fernet key (32 bytes in "
                    "url-safe base64, e.g. from `python -c \"from cryptography.fernet import "
                    "Fernet; print(Fernet.generate_key().decode())\"`)") from None
        self._fernet = MultiFernet(fernets)
        self._first = fernets[0]
        self.count = len(fernets)

    @classmethod
    def from_option(cls, value: str | Sequence[str] | None) -> Encryption | None:
        """From the option's comma-separated keys (or a list of keys); None for none."""
        keys = [k for k in (value.split(",") if isinstance(value, str) else value or ())
                if k.strip()]
        return cls(keys) if keys else None

    def seal(self, value: Any) -> str:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return ENVELOPE_PREFIX + self._fernet.encrypt(text.encode()).decode("ascii")

    def open(self, envelope: str) -> Any:
        try:
            text = self._fernet.decrypt(envelope[len(ENVELOPE_PREFIX):].encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise EncryptionError("a stored sensitive value opens with none of the "
                                  f"{self.count} encryption keys given") from None
        return json.loads(text)

    def check_token(self) -> str:
        return self._fernet.encrypt(_MARKER_TEXT).decode("ascii")

    def opens(self, token: str) -> bool:
        try:
            return self._fernet.decrypt(token.encode("ascii")) == _MARKER_TEXT
        except (InvalidToken, UnicodeEncodeError):
            return False

    def rotate(self, token: str) -> str:
        """`token` encrypted with the first key (itself when it already is)."""
        try:
            self._first.decrypt(token.encode("ascii"))
            return token
        except InvalidToken:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")


def is_envelope(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(ENVELOPE_PREFIX)


def seal_document(encryption: Encryption | None, cls: type[AnyResource], doc: Document
                  ) -> Document:
    """`doc` (a fresh dump, changed in place) with its sensitive values encrypted."""
    fields = sensitive_fields(cls.resource_info.spec_type)
    spec = doc.get("spec") if fields else None
    if not isinstance(spec, dict):
        return doc
    for _, name in fields:
        if name not in spec:
            continue
        if encryption is not None:  # (an envelope-like text too: it opens to itself)
            spec[name] = encryption.seal(spec[name])
        elif is_envelope(spec[name]):
            # Stored in the clear, it would read back as an envelope no key opens.
            raise Invalid(f"invalid spec.{name}: a sensitive value cannot start with "
                          f"{ENVELOPE_PREFIX!r}")
    return doc


def open_document(encryption: Encryption | None, cls: type[AnyResource], doc: Document
                  ) -> Document:
    """`doc` with its sensitive values decrypted (a copy when there are any; values in the
    clear stay as they are). `EncryptionError` for an envelope without a key that opens it."""
    fields = sensitive_fields(cls.resource_info.spec_type)
    spec = doc.get("spec") if fields else None
    if not isinstance(spec, dict):
        return doc
    sealed = [name for _, name in fields if is_envelope(spec.get(name))]
    if not sealed:
        return doc
    if encryption is None:
        raise EncryptionError(
            f"{cls.resource_info.plural}/{doc.get('metadata', {}).get('uid')} holds "
            "encrypted sensitive values and this server has no --encryption-key")
    opened = dict(spec)
    for name in sealed:
        opened[name] = encryption.open(spec[name])
    return {**doc, "spec": opened}


async def check_storage_key(storage: Storage, encryption: Encryption | None,
                            kinds: Iterable[type[AnyResource]]) -> None:
    """At start: refuse (`EncryptionError`) when storage holds encrypted values and no key
    given opens them; with keys, record that it holds them (the marker) and move the
    marker to the first key."""
    if not any(sensitive_fields(k.resource_info.spec_type) for k in kinds):
        return  # no kind has sensitive values to open: nothing to check
    marker = await _marker(storage)
    if marker is None:
        if encryption is not None and any(sensitive_fields(k.resource_info.spec_type)
                                          for k in kinds):
            await _write_marker(storage, encryption)
        return
    token = str(marker.get("check", ""))
    if encryption is None:
        raise EncryptionError(
            "the storage holds encrypted sensitive values (it was served with "
            "--encryption-key) and no key is given: start with --encryption-key (or the "
            "project's ..._ENCRYPTION_KEY variable) set to the key(s) it was served with")
    if not encryption.opens(token):
        raise EncryptionError(
            f"none of the {encryption.count} encryption keys given opens the storage's "
            "encrypted sensitive values: give the key they were written with (a new key "
            "first, the old ones after it, to rotate)")
    rotated = encryption.rotate(token)
    if rotated != token:
        try:
            await storage.update(MARKER_COLLECTION, {**marker, "check": rotated},
                                 marker["metadata"]["resourceVersion"])
        except Exception as exc:  # another process moved it first: it is as good
            log.debug("encryption marker not rotated: %s", exc)


async def _marker(storage: Storage) -> Document | None:
    try:
        return await storage.get_by_name(MARKER_COLLECTION, _MARKER_NAME)
    except NotFound:
        return None


async def _write_marker(storage: Storage, encryption: Encryption) -> None:
    doc = {"metadata": {"uid": new_uid("enc"), "name": _MARKER_NAME, "labels": {}},
           "check": encryption.check_token()}
    try:
        await storage.create(MARKER_COLLECTION, doc)
    except AlreadyExists:  # another process of the service wrote it first
        existing = await _marker(storage)
        if existing is not None and not encryption.opens(str(existing.get("check", ""))):
            raise EncryptionError("another process recorded a different encryption key "
                                  "for this storage") from None
