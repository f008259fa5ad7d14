# The host simulation's per-meter seal key: var/meter.key, generated on first use.
#
# var/ is outside source control (.gitignore); the board reads /meter.key instead
# (meter/keyfile.py). Delete the file together with the flash image to start a new meter.

import os

from meter.storage.keyfile import load_key
from hosthal.flash_file import _exists, _makedirs

DEFAULT_PATH = "var/meter.key"
KEY_BYTES = 32


def host_key(path=DEFAULT_PATH):
    """The key at `path`, created with 32 random bytes when it does not exist."""
    if not _exists(path):
        _makedirs(path)
        with open(path, "wb") as f:
            f.write(os.urandom(KEY_BYTES))
    return load_key(path)
