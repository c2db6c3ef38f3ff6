"""Signatures of webhook bodies: `sha256=<hex HMAC-SHA256 of the raw bytes>`.

Meta signs what it POSTs with the app secret (`X-Hub-Signature-256`); igsched signs what it
forwards the same way (`X-Igsched-Signature-256`). The check runs over the exact bytes
received: a body parsed and serialised again has other bytes and another signature.
"""

from __future__ import annotations

import hashlib
import hmac
import re

SIGNATURE_HEADER = "X-Hub-Signature-256"
_HEADER_RE = re.compile(r"sha256=([0-9a-fA-F]{64})")


class SignatureRefused(Exception):
    """The signature is missing, malformed or wrong. `reason` is safe to log (no secret,
    no signature value)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: str | bytes, body: bytes) -> str:
    """The header value for `body`: `sha256=<64 lowercase hex digits>`."""
    return "sha256=" + hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def parse_signature(header: str | None) -> bytes:
    """The 32-byte digest in a `sha256=<hex>` header value; anything else is refused."""
    if header is None or header == "":
        raise SignatureRefused("no signature header")
    match = _HEADER_RE.fullmatch(header.strip())
    if match is None:
        raise SignatureRefused("malformed signature header (expected sha256=<64 hex digits>)")
    return bytes.fromhex(match.group(1))


def verify(secret: str | bytes, body: bytes, header: str | None) -> None:
    """Raise `SignatureRefused` unless `header` is the signature of `body` (constant time)."""
    if not _key(secret):
        raise SignatureRefused("no app secret configured")
    given = parse_signature(header)
    expected = hmac.new(_key(secret), body, hashlib.sha256).digest()
    if not hmac.compare_digest(given, expected):
        raise SignatureRefused("signature does not match the body")


def tokens_equal(given: str, expected: str) -> bool:
    """Constant-time comparison of a presented token with the configured one."""
    return hmac.compare_digest(given.encode(), expected.encode())
