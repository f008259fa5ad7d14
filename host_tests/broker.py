"""Mosquitto for the tests: `mosquitto` (function scope) and `mosquitto_module` (module scope)
fixtures, each a private broker on a free loopback port (tools/mosquitto.py starts it).

    from broker import mosquitto  # noqa: F401  (the fixture, in a test module)

    def test_x(mosquitto):  # noqa: F811
        mosquitto.host, mosquitto.port; mosquitto.restart(); mosquitto.log_text()

or, without the lint pragmas, a local fixture: `with Mosquitto() as b: yield b`.
ms() is the wrapping ms clock and drive(sessions, until) polls meter Sessions until a
condition holds (returning the longest poll in ms).
"""

import pytest

from mosquitto import Mosquitto, free_port

__all__ = ["Mosquitto", "free_port", "mosquitto", "mosquitto_module"]


# Each broker gets its own directory under the system tmp dir (not pytest's tmp_path: when
# the tests run as root, mosquitto drops to its own user, which cannot enter pytest's
# private directories to save its database).


@pytest.fixture
def mosquitto():
    b = Mosquitto()
    b.start()
    yield b
    b.cleanup()


@pytest.fixture(scope="module")
def mosquitto_module():
    b = Mosquitto()
    b.start()
    yield b
    b.cleanup()


def ms():
    """The monotonic ms clock as the board's ticks_ms() gives it (wrapping at 2**30)."""
    import time

    from meter.ticks import TICKS_MASK

    return (time.monotonic_ns() // 1_000_000) & TICKS_MASK


def drive(sessions, until, timeout_s=10.0, sleep_s=0.001):
    """Poll each Session (one or a list) until until() is true or timeout_s passes; returns
    the longest single poll() in ms (printed by the tests, never asserted: the bench
    measures). Raises AssertionError on timeout."""
    import time

    if not isinstance(sessions, (list, tuple)):
        sessions = [sessions]
    longest = 0.0
    deadline = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in %.1f s" % timeout_s)
        for s in sessions:
            t0 = time.perf_counter()
            s.poll(ms())
            longest = max(longest, (time.perf_counter() - t0) * 1000)
        time.sleep(sleep_s)
    return longest
