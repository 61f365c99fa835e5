"""Secrets for kiosks and the back office: generated once, stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets

KIOSK_KEY_PREFIX = "kk_"
TOKEN_PREFIX = "kt_"
_SECRET_BYTES = 32
# Enough characters to tell keys apart in `kiosk list`, far too few to guess the rest.
VISIBLE_PREFIX_LENGTH = 8


def generate_kiosk_key() -> str:
    """A new kiosk API key; the type prefix lets secret scanners and humans recognise it."""
    return KIOSK_KEY_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)


def generate_token() -> str:
    """A new back-office bearer token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)


def hash_secret(secret: str) -> str:
    """SHA-256 hex: keys are random 256-bit values, so a slow KDF would add cost and no safety."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def visible_prefix(secret: str) -> str:
    """The non-secret part shown to operators, e.g. `kk_Ab3dE`."""
    return secret[:VISIBLE_PREFIX_LENGTH]


# Enrollment codes are typed by installers: no 0/O, 1/I/L look-alikes, no case to get wrong.
ENROLLMENT_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
ENROLLMENT_GROUPS = (5, 5)  # 10 characters, ~49.5 bits: single-use and valid for hours only
_SEPARATORS = str.maketrans("", "", " -_\t")


def generate_enrollment_code() -> str:
    """A new one-time code, grouped for reading: `K7QX2-M9PDF`."""
    groups = (
        "".join(secrets.choice(ENROLLMENT_ALPHABET) for _ in range(size))
        for size in ENROLLMENT_GROUPS
    )
    return "-".join(groups)


def normalize_enrollment_code(text: str) -> str | None:
    """The code as stored (hashed): upper case, separators dropped; None when it cannot be one,
    so a malformed guess costs no database query."""
    compact = text.translate(_SEPARATORS).upper()
    if len(compact) != sum(ENROLLMENT_GROUPS) or any(c not in ENROLLMENT_ALPHABET for c in compact):
        return None
    return compact
