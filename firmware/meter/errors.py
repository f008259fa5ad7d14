# The error convention of the firmware: one exception for rejected settings, E_ codes, errno.
#
# Every rejection carries a short code string "E_..." as args[0] (a settings value out of
# range, a malformed record, a missing part), so logs, tests and the head-end match on the
# code, never on prose. Where a code needs context it follows the code after a space
# ("E_RADIO wisun"). OS-level failures of drivers raise OSError with an errno number from
# the constants below (MicroPython's errno numbers are Linux's and lwIP's).

from micropython import const

# errno numbers (MicroPython's `errno` module has no EMSGSIZE; the values are Linux's)
EAGAIN = const(11)  # try again: the resource is busy (a send slot still going out)
EMSGSIZE = const(90)  # a datagram larger than the link can carry
ENOTCONN = const(107)  # the link or session is not up


class SettingError(ValueError):
    """A setting or stored value outside its allowed range; args[0] is its E_ code."""


def code(exc):
    """The E_ code of an exception raised by the firmware (its first word), or the name of
    its class when it carries none."""
    a = exc.args
    if a and isinstance(a[0], str):
        return a[0].split(" ", 1)[0]
    return type(exc).__name__
