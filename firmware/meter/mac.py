# HMAC-SHA256 for seals, command envelopes and alarms, and a constant-time comparison.
#
# The RFC 2104 construction over the built-in hashlib.sha256, with the key pads computed
# once per key: ~0.5 KB and ~5 us per digest, against ~1.5 KB and ~35 us for
# micropython-lib's `hmac` (which is deliberately neither frozen nor used, so a copy
# installed with mip cannot take over). The host tests check it against CPython's hmac.

import hashlib

from meter.errors import SettingError

_BLOCK = 64


def _pads(key):
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    ipad = bytearray(_BLOCK)
    opad = bytearray(_BLOCK)
    for i in range(_BLOCK):
        k = key[i] if i < len(key) else 0
        ipad[i] = k ^ 0x36
        opad[i] = k ^ 0x5C
    return ipad, opad


class Hmac:
    """HMAC-SHA256 under one key; the key pads are computed once."""

    def __init__(self, key):
        if not key:
            raise SettingError("E_KEY_EMPTY")
        self._key = bytes(key)
        self._ipad, self._opad = _pads(self._key)

    def digest(self, *parts):
        """HMAC of the concatenation of parts (bytes-like)."""
        inner = hashlib.sha256(self._ipad)
        for p in parts:
            inner.update(p)
        return self._outer(inner)

    def digest1(self, data):
        """digest(data) of one bytes-like object, without the argument tuple: the journal's
        per-record seal. Two hash objects and two 32-byte digests are all it allocates
        (MicroPython's hashlib objects have no copy() or reset, so the pads are hashed
        again each time: one compression each, ~0.45 KB on a 64-bit port)."""
        inner = hashlib.sha256(self._ipad)
        inner.update(data)
        return self._outer(inner)

    def _outer(self, inner):
        outer = hashlib.sha256(self._opad)
        outer.update(inner.digest())
        return outer.digest()


def equal(a, b):
    """Compare two MACs in time independent of where they differ."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0
