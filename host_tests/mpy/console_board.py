# scenario-heap: 1m
# The bench console in the board shell: firmware/main.py on the simulated ESP32 (fakes) with a
# bench build's board definition (CONSOLE on UART 1, the bench jumper held at boot). The
# console task answers on its own UART (not the REPL), a signed `fail` injects a power
# failure whose falling edge wakes the power task through the wrapper's IRQ, and the Last Gasp
# machine runs its sequence (sealed alarm: no uplink on this board, so it is counted lost)
# while the metering task keeps its 1 s cadence.

import boardsim
import espchip

TX, RX, BENCH = 32, 33, 25
boardsim.setup(METROLOGY="simulated", RADIO="none", CONSOLE=True, CONSOLE_UART_ID=1,
               PIN_CONSOLE_TX=TX, PIN_CONSOLE_RX=RX, PIN_BENCH=BENCH, BENCH_LEVEL=0)
from meter.mac import Hmac  # noqa: E402
from meter.console.auth import message  # noqa: E402

espchip.drive(BENCH, 0)  # the bench jumper fitted at boot
T0 = espchip.ms
replies = []


def uart():
    return espchip.uarts[1]


def send(line):
    uart()._feed(line.encode() + b"\n")


def take():
    u = uart()
    text = bytes(u.sent).decode()
    u.sent[:] = b""
    replies.append(text)
    return text


def ask_challenge():
    take()
    send("challenge")


def signed_fail():
    text = take()
    nonce = [x.split()[1] for x in text.splitlines() if x.startswith("nonce ")][0]
    mid = [x.split()[1] for x in text.splitlines() if x.startswith("meter_id ")][0]
    mac = Hmac(boardsim.KEY).digest(message(mid.encode(), bytes.fromhex(nonce), "fail 2000"))
    send("fail 2000 mac=" + mac.hex())


espchip.at(T0 + 3_000, lambda: send("id"))
espchip.at(T0 + 3_500, lambda: send("\x00\xffgarbage"))
espchip.at(T0 + 4_000, ask_challenge)
espchip.at(T0 + 4_500, signed_fail)
espchip.at(T0 + 9_000, lambda: (take(), send("lastgasp")))
espchip.at(T0 + 9_500, take)
run = boardsim.boot(stop_ms=12_000)
m = run.meter
assert run.outcome == "stop", run.outcome
assert m.console is not None and m.console.port is not None
text = "\n".join(replies)
assert "meter_id " in text and "firmware 1" in text, text
assert "ERROR E_BINARY" in text, text
assert "length_ms 2000" in text, text  # the signed fail was accepted
lg = m.lastgasp
assert lg.failures == 1 and lg.state == 0, (lg.failures, lg.state)
assert "failures 1" in replies[-1] and "state up" in replies[-1], replies[-1]
assert m.ticks >= 11, m.ticks  # one step a second throughout
assert m.console.bench == 2  # bench mode from the jumper
e = m.command_log.get(0)
assert e[4] == 0x41 and e[5] == 0, e  # the injected failure, audited
print("PASS")
