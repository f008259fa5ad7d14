"""CPython stand-in for MicroPython's `micropython` module (host tests and tools only)."""


def const(value):
    return value


def heap_lock():
    return 0


def heap_unlock():
    return 0


def schedule(func, arg):
    func(arg)
