# Authentication of a newly fitted radio module: challenge-response keyed from the A-route.
#
# The head-end (A-route) gives the meter a B-route master key. Each module is provisioned
# with its own key, module_key = HMAC(master, "broute-module" | kind | id), so the meter
# can check any module the utility provisioned without storing per-module secrets. For a
# new module the meter sends a fresh challenge (16-byte nonce from the caller) and expects
# HMAC(module_key, challenge | kind | id | firmware). Until that matches, the module is
# not used for B-route traffic.

from meter.mac import Hmac, equal

_LABEL = b"broute-module"
NONCE_SIZE = 16


def _b(s):
    return s if isinstance(s, (bytes, bytearray)) else s.encode()


def module_key(master_key, kind, module_id):
    """The key the utility provisions into module (kind, module_id)."""
    return Hmac(master_key).digest(_LABEL, b"|", _b(kind), b"|", _b(module_id))


def response(key, challenge, kind, module_id, firmware):
    """What a module with `key` answers to `challenge` (used by module implementations)."""
    return Hmac(key).digest(challenge, b"|", _b(kind), b"|", _b(module_id), b"|",
                            _b(firmware))


class ModuleAuth:
    def __init__(self, master_key=None):
        self.master_key = master_key

    def set_master_key(self, key):
        """Install or rotate the key received over the A-route."""
        self.master_key = bytes(key)

    def verify(self, identity, challenge, answer):
        """True when `answer` proves the module holds its provisioned key."""
        if self.master_key is None or answer is None or len(challenge) < NONCE_SIZE:
            return False
        kind, module_id, firmware = identity
        key = module_key(self.master_key, kind, module_id)
        return equal(response(key, challenge, kind, module_id, firmware), answer)
