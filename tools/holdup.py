"""Hold-up capacitor calculator: the Last Gasp time a capacitor gives, or the capacitor a
sequence needs. Uses the firmware's own integer model (firmware/meter/holdup.py).

    python tools/holdup.py --board esp32_devkitc          the board definition's figures
    python tools/holdup.py time --cap-mf 600 --v-start 5000 --v-min 2700 --eff 85 \\
                           --profile 50:120,300:240,4650:240
    python tools/holdup.py size --v-start 5000 --v-min 2700 --eff 85 --profile 5000:270
"""

import argparse
import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("board/cpython", "firmware"):
    sys.path.insert(0, os.path.join(ROOT, sub))

from meter.outage import holdup  # noqa: E402


def parse_profile(text):
    """'50:120,300:240' -> [(50, 120), (300, 240)] as (ms, mA) steps."""
    steps = []
    for part in text.split(","):
        ms, ma = part.split(":")
        steps.append((int(ms), int(ma)))
    if not steps or any(ms <= 0 or ma < 0 for ms, ma in steps):
        raise argparse.ArgumentTypeError("profile steps must be ms:mA with ms > 0")
    return steps


def load_board(name):
    path = os.path.join(ROOT, "board", name, "board_config.py")
    spec = importlib.util.spec_from_file_location("board_config_" + name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def report_time(cap_mf, v_start, v_min, eff, profile):
    e = holdup.usable_energy_uj(cap_mf, v_start, v_min, eff)
    t = holdup.holdup_ms(e, profile)
    need = holdup.profile_energy_uj(profile)
    print("capacitor %d mF, %d -> %d mV, efficiency %d %%" % (cap_mf, v_start, v_min, eff))
    print("  usable energy      %10.3f J" % (e / 1e6))
    print("  sequence energy    %10.3f J over %d ms" % (need / 1e6, sum(s for s, _ in profile)))
    print("  hold-up time       %10d ms" % t)
    print("  firmware budget    %10d ms (hold-up less 20 %% margin)" % (t * 80 // 100))
    print("  margin             %10.1f x the sequence energy" % (e / need if need else 0))


def main(argv=None):
    p = argparse.ArgumentParser(description="hold-up capacitor calculator")
    p.add_argument("--board", help="report a board definition's hold-up figures")
    sub = p.add_subparsers(dest="cmd")
    for name in ("time", "size"):
        q = sub.add_parser(name)
        if name == "time":
            q.add_argument("--cap-mf", type=int, required=True, help="capacitance, mF")
        else:
            q.add_argument("--derate", type=int, default=200, help="derating, percent")
        q.add_argument("--v-start", type=int, required=True, help="start voltage, mV")
        q.add_argument("--v-min", type=int, required=True, help="minimum converter input, mV")
        q.add_argument("--eff", type=int, default=85, help="converter efficiency, percent")
        q.add_argument("--profile", type=parse_profile, required=True,
                       help="current profile ms:mA,ms:mA,...")
    a = p.parse_args(argv)
    try:
        if a.board:
            h = load_board(a.board).HOLDUP
            report_time(h["cap_mf"], h["v_start_mv"], h["v_min_mv"], h["eff_pct"],
                        h["profile"])
        elif a.cmd == "time":
            report_time(a.cap_mf, a.v_start, a.v_min, a.eff, a.profile)
        elif a.cmd == "size":
            c = holdup.capacitance_mf(a.profile, a.v_start, a.v_min, a.eff, a.derate)
            print("capacitance needed: %d mF (%.3f F) including %d %% derating" % (
                c, c / 1000, a.derate))
        else:
            p.print_help()
            return 2
    except ValueError as e:
        print("error:", e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
