# HMAC-SHA256 for seals, command envelopes and alarms, and a constant-time comparison.
#
# On the board micropython-lib's `hmac` is frozen in (board/*/manifest.py require("hmac"))
# and used when importable. Ports without it (the unix port in CI has no micropython-lib)
# use the RFC 2104 construction over the built-in hashlib.sha256 below; both give the same
# digest, which the host tests check against CPython's hmac.

import hashlib

from meter.errors import SettingError

_BLOCK = 64

try:
    import hmac as _hmac
except ImportError:
    _hmac = None


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
        if _hmac is not None:
            h = _hmac.new(self._key, digestmod=hashlib.sha256)
            for p in parts:
                h.update(p)
            return h.digest()
        inner = hashlib.sha256(self._ipad)
        for p in parts:
            inner.update(p)
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
