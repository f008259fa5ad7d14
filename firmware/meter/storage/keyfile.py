# The per-meter seal key: read from a file provisioned on the board, never from source.
#
# The key is 16..64 raw bytes (32 recommended) in a file outside source control: on the
# board /meter.key, written once at provisioning (e.g. `mpremote cp meter.key :/meter.key`
# from a key generated and recorded by the utility); in the host simulation a file under
# var/ generated on first use (host_tests/hosthal/keyfile.py). The same key must be known to
# the head-end that verifies seals.

from micropython import const

DEFAULT_PATH = "/meter.key"
MIN_KEY = const(16)
MAX_KEY = const(64)


class KeyMissing(Exception):
    """args[0]: error code, args[1]: a message saying what to do."""


def load_key(path=DEFAULT_PATH):
    """Bytes of the per-meter key; raises KeyMissing ("E_KEY_MISSING", "E_KEY_LENGTH")."""
    try:
        with open(path, "rb") as f:
            key = f.read(MAX_KEY + 1)
    except OSError:
        raise KeyMissing("E_KEY_MISSING", "no seal key at %s: provision the per-meter key "
                         "file before first boot" % path)
    if not MIN_KEY <= len(key) <= MAX_KEY:
        raise KeyMissing("E_KEY_LENGTH", "seal key at %s must be %d..%d bytes, found %d"
                         % (path, MIN_KEY, MAX_KEY, len(key)))
    return key
