# The object-model facts of the MicroPython this runs on (wasm32 through tools/wasm32/run.mjs,
# or the unix port): implementation, maxsize, pointer size, small-int width, heap calls, .mpy.
# Prints "fact: name value" lines; host_tests/test_wasm32.py checks them.

import gc
import sys

import micropython


def fact(name, value):
    print("fact:", name, value)


def alloc(make, n):
    """Bytes the heap grows by for make(n) (a fresh object, kept alive until measured)."""
    a = gc.mem_alloc()
    obj = make(n)
    b = gc.mem_alloc()
    return b - a, obj


def locked(shift, sign):
    """True when sign * (1 << shift) needs the heap (a big int), i.e. it is no small int.
    The shift comes in as an argument: a constant expression would be folded by the
    compiler, before the heap is locked."""
    micropython.heap_lock()
    try:
        v = sign * (1 << shift)
        big = False
    except MemoryError:
        v = None
        big = True
    micropython.heap_unlock()
    return big, v


fact("implementation", sys.implementation.name)
fact("version", ".".join(str(v) for v in sys.implementation.version[:3]))
fact("platform", sys.platform)
fact("maxsize", sys.maxsize)
fact("heap_lock", hasattr(micropython, "heap_lock") and hasattr(micropython, "heap_unlock"))
fact("mem_alloc", hasattr(gc, "mem_alloc"))
fact("mem_free", hasattr(gc, "mem_free"))

# A list of n slots is n words (plus a header): the per-slot growth is the pointer size.
# The GC hands out 16-byte blocks on 32-bit ports and 32-byte ones on 64-bit: 16 slots
# differ by whole blocks either way.
gc.collect()
a16, keep = alloc(lambda n: [None] * n, 16)
a32, keep2 = alloc(lambda n: [None] * n, 32)
fact("pointer_bytes", (a32 - a16) // 16)
fact("bytearray_1_bytes", alloc(bytearray, 1)[0])  # object and buffer: two GC blocks

# The widest small int: the largest shift whose value needs no heap.
width = 0
for s in range(16, 64):
    if locked(s, 1)[0]:
        break
    width = s
fact("small_int_max", "2**%d-1" % (width + 1))  # 1 << width is small: so is 2**(width+1)-1
fact("small_int_bits", width + 2)  # the value bits, the sign bit; the tag bit takes the rest
fact("shift30_is_big", locked(30, 1)[0])
fact("neg_shift30_is_big", locked(30, -1)[0])
big29, v29 = locked(29, 1)
fact("shift29_is_big", big29)
try:
    import meter  # noqa: F401
    fact("meter_from", getattr(meter, "__file__", "?"))
except ImportError:
    fact("meter_from", "not importable")
print("PASS")
