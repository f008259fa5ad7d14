"""meter.mac gives the same HMAC-SHA256 as CPython's hmac for any key and message."""

import hashlib
import hmac

from hypothesis import given, strategies as st

from meter import mac


@given(st.binary(min_size=1, max_size=150), st.lists(st.binary(max_size=90), max_size=4))
def test_digest_matches_cpython_hmac(key, parts):
    expected = hmac.new(key, b"".join(parts), hashlib.sha256).digest()
    saved = mac._hmac
    try:
        mac._hmac = None  # force the RFC 2104 path used on ports without micropython-lib
        assert mac.Hmac(key).digest(*parts) == expected
    finally:
        mac._hmac = saved
    assert mac.Hmac(key).digest(*parts) == expected


def test_equal_compares_whole_values():
    assert mac.equal(b"abc", b"abc")
    assert not mac.equal(b"abc", b"abd")
    assert not mac.equal(b"abc", b"ab")


def test_empty_key_is_refused_with_its_code():
    try:
        mac.Hmac(b"")
    except ValueError as e:
        assert e.args[0] == "E_KEY_EMPTY"
        return
    raise AssertionError("empty key accepted")
