"""meter.mac gives the same HMAC-SHA256 as CPython's hmac for any key and message."""

import hashlib
import hmac

from hypothesis import given, strategies as st

from meter import mac


@given(st.binary(min_size=1, max_size=150), st.lists(st.binary(max_size=90), max_size=4))
def test_digest_matches_cpython_hmac(key, parts):
    expected = hmac.new(key, b"".join(parts), hashlib.sha256).digest()
    assert mac.Hmac(key).digest(*parts) == expected


def test_the_firmware_never_uses_a_micropython_lib_hmac():
    import sys
    import types

    fake = types.ModuleType("hmac")
    fake.new = lambda *a, **k: (_ for _ in ()).throw(AssertionError("hmac used"))
    saved = sys.modules.get("hmac")
    sys.modules["hmac"] = fake
    try:
        import importlib
        m = importlib.reload(mac)
        assert m.Hmac(b"k").digest(b"x") == hmac.new(b"k", b"x", hashlib.sha256).digest()
    finally:
        if saved is not None:
            sys.modules["hmac"] = saved
        importlib.reload(mac)


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
