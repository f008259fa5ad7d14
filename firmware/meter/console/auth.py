# HMAC challenge-response for the console's privileged commands (sans-IO).
#
# challenge(now) draws a fresh NONCE_LEN-byte nonce from the board's random source (never
# reused: each challenge replaces the previous one) and numbers it (cid, counting from 1
# since boot). A privileged line then ends in "mac=<64 hex>", the HMAC-SHA256 of
#   b"meter-console:" + meter_id + b":" + nonce + b":" + text
# where text is the line without that token (tokens joined by single spaces), under the
# per-meter key or the bench key (whichever verifies is reported). verify() consumes the
# nonce whatever the outcome, so a response can be used once: a replayed line finds no
# challenge (E_NO_CHALLENGE) or a newer nonce (E_AUTH). A nonce older than NONCE_TTL_MS is
# refused (E_CHALLENGE_EXPIRED). Failures are rate limited: after FAIL_MAX failures within
# FAIL_WINDOW_MS the console refuses challenges and privileged lines (E_AUTH_LOCKED) until
# LOCK_MS after the last failure, so a key cannot be searched at line speed.

from micropython import const

from meter import mac
from meter.ticks import elapsed_ms

NONCE_LEN = const(16)
MAC_HEX = const(64)
NONCE_TTL_MS = const(120_000)
FAIL_MAX = const(3)
FAIL_WINDOW_MS = const(60_000)
LOCK_MS = const(60_000)
PREFIX = b"meter-console:"

# verify() results (E_ codes for the reply line; 0 = authentic)
KEY_METER = const(1)
KEY_BENCH = const(2)
KEY_NAMES = ("none", "meter", "bench")


def message(meter_id, nonce, text):
    """The bytes a privileged line's mac= covers (the host tool builds the same)."""
    return PREFIX + bytes(meter_id) + b":" + bytes(nonce) + b":" + text.encode()


class ConsoleAuth:
    """meter_key, bench_key: bytes or None (at least one is needed for any privileged
    command); random(n) -> n bytes (meter.hal.Board.random)."""

    def __init__(self, meter_id, meter_key, bench_key, random):
        self.meter_id = bytes(meter_id)
        self._keys = []
        self.meter_keyed = bool(meter_key)  # the meter has its per-meter key
        if meter_key:
            self._keys.append((KEY_METER, mac.Hmac(meter_key)))
        if bench_key:
            self._keys.append((KEY_BENCH, mac.Hmac(bench_key)))
        self.random = random
        self.cid = 0  # number of the newest challenge
        self.nonce = None  # outstanding nonce (bytes) or None
        self._nonce_ms = 0
        self.failures = 0  # failed verifications since boot
        self.locked_out = 0  # lines and challenges refused while locked
        self._win_ms = 0
        self._win_n = 0
        self._last_fail_ms = 0

    @property
    def keys(self):
        return len(self._keys)

    def key_names(self):
        return [KEY_NAMES[k] for k, _ in self._keys]

    def locked(self, now):
        """True while failures are being rate limited."""
        if self._win_n < FAIL_MAX:
            return False
        el = elapsed_ms(now.ms, self._last_fail_ms)
        if 0 <= el < LOCK_MS:
            return True
        self._win_n = 0  # the lock has run out
        return False

    def lock_left_s(self, now):
        el = elapsed_ms(now.ms, self._last_fail_ms)
        return (LOCK_MS - el + 999) // 1000 if 0 <= el < LOCK_MS else 0

    def challenge(self, now):
        """A fresh nonce (bytes) with its number self.cid; None while locked."""
        if self.locked(now):
            self.locked_out += 1
            return None
        self.cid += 1
        self.nonce = bytes(self.random(NONCE_LEN))
        self._nonce_ms = now.ms
        return self.nonce

    def _fail(self, now):
        self.failures += 1
        el = elapsed_ms(now.ms, self._win_ms)
        if self._win_n == 0 or el < 0 or el >= FAIL_WINDOW_MS:
            self._win_ms = now.ms
            self._win_n = 0
        self._win_n += 1
        self._last_fail_ms = now.ms

    def verify(self, text, mac_hex, now):
        """(E_ code or None, key kind) for a privileged line's text and its mac= value. The
        outstanding nonce is consumed by every call that gets past the lock."""
        if self.locked(now):
            self.locked_out += 1
            return "E_AUTH_LOCKED", 0
        if not self._keys:
            return "E_NO_KEY", 0
        nonce = self.nonce
        if nonce is None:
            return "E_NO_CHALLENGE", 0
        self.nonce = None
        el = elapsed_ms(now.ms, self._nonce_ms)
        if el < 0 or el >= NONCE_TTL_MS:
            return "E_CHALLENGE_EXPIRED", 0
        try:
            tag = bytes.fromhex(mac_hex) if len(mac_hex) == MAC_HEX else None
        except ValueError:
            tag = None
        if tag is None:
            self._fail(now)
            return "E_AUTH", 0
        msg = message(self.meter_id, nonce, text)
        for kind, h in self._keys:
            if mac.equal(h.digest(msg), tag):
                return None, kind
        self._fail(now)
        return "E_AUTH", 0
