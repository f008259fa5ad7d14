"""Metrology front ends: BL0942 packet parsing and energy, S0 pulse counting with debounce and
hardware-counter wrap, and the simulated household profile."""

import pytest
from hypothesis import given, settings, strategies as st

from meter.clock import Now
from meter.metering.frontends import elapsed_ms, scale
from meter.metering.frontends import bl0942, s0, simulated
from meter.metering.frontends.bl0942 import Bl0942, Bl0942Parser
from meter.metering.frontends.s0 import S0PulseInput
from meter.metering.frontends.simulated import SimulatedHousehold
from meter.metering.intervals import IntervalCapture
from meter.metering.samples import Metering, Sample, NO_VALUE, REJECTED
from meter.metering.registers import EnergyRegisters, FWD, REV
from hosthal.clock import VirtualClock
from hosthal.links import LoopUart

NOW = Now()  # reused: reading the clock allocates nothing


# --- helpers (an encoder written from the datasheet rule, independent of the parser) --------

def le24(v):
    return bytes((v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF))


def packet(i_rms=0, v_rms=0, i_fast=0, watt=0, cf=0, freq=20_000, status=0, address=0,
           corrupt=False):
    body = (b"\x55" + le24(i_rms) + le24(v_rms) + le24(i_fast) + le24(watt & 0xFFFFFF)
            + le24(cf) + bytes((freq & 0xFF, freq >> 8, 0, status, 0, 0)))
    check = 0xFF - ((0x58 + address + sum(body)) & 0xFF)
    if corrupt:
        check ^= 0x01
    return body + bytes((check,))


def fields(p):
    return (p.i_rms, p.v_rms, p.i_fast_rms, p.watt, p.cf_cnt, p.freq, p.status)


class Recorder:
    def __init__(self):
        self.seen = []

    def __call__(self, p):
        self.seen.append(fields(p))


# --- shared helpers ---------------------------------------------------------------------

def test_elapsed_ms_handles_the_2_30_wrap_of_board_ticks():
    assert elapsed_ms(5, (1 << 30) - 10) == 15
    assert elapsed_ms(100, 40) == 60
    assert elapsed_ms(40, 100) == -60


@given(st.integers(0, (1 << 24) - 1), st.integers(1, 5000), st.integers(1, 200_000))
def test_scale_is_the_exact_floor_of_x_num_over_den(x, num, den):
    assert scale(x, num, den) == x * num // den


# --- BL0942 parser ------------------------------------------------------------------------

def test_all_zero_packet_with_hand_computed_checksum_parses():
    # checksum = ~(0x58 + 0x55) & 0xFF = ~0xAD & 0xFF = 0x52
    raw = b"\x55" + bytes(21) + b"\x52"
    p = Bl0942Parser()
    assert p.feed(raw) == 1
    assert fields(p) == (0, 0, 0, 0, 0, 0, 0)
    assert p.bad_checksum == 0 and p.skipped == 0


def test_packet_fields_decode_little_endian_and_signed_watt():
    p = Bl0942Parser()
    p.feed(packet(i_rms=0x123456, v_rms=1_604_217, i_fast=77, watt=-1234, cf=0xFFFFFE,
                  freq=16_667, status=1))
    assert fields(p) == (0x123456, 1_604_217, 77, -1234, 0xFFFFFE, 16_667, 1)


def test_address_selects_the_checksum_seed():
    p = Bl0942Parser(address=2)
    assert p.feed(packet(v_rms=5, address=0)) == 0 and p.bad_checksum == 1
    assert p.feed(packet(v_rms=5, address=2)) == 1 and p.v_rms == 5


def test_bad_checksum_is_rejected_counted_and_changes_no_field():
    p = Bl0942Parser()
    p.feed(packet(v_rms=100, cf=7))
    assert p.feed(packet(v_rms=999, cf=9, corrupt=True)) == 0
    assert p.bad_checksum == 1 and p.frames == 1
    assert (p.v_rms, p.cf_cnt) == (100, 7)
    assert p.feed(packet(v_rms=101, cf=8)) == 1 and p.v_rms == 101


def test_garbage_before_a_packet_is_skipped_and_counted_as_one_resync():
    p = Bl0942Parser()
    assert p.feed(b"\x00\x13\xfe" + packet(v_rms=42)) == 1
    assert p.v_rms == 42 and p.skipped == 3 and p.resyncs == 1


def test_false_header_in_garbage_realigns_on_the_real_packet():
    p = Bl0942Parser()
    assert p.feed(b"\x55\x01\x02" + packet(v_rms=43) + packet(v_rms=44)) == 2
    assert p.v_rms == 44 and p.bad_checksum == 1 and p.resyncs == 1


def test_each_loss_of_alignment_counts_one_resync():
    p = Bl0942Parser()
    p.feed(b"\x01\x02" + packet(v_rms=1) + b"\x03\x55\x04" + packet(v_rms=2) + b"\x05\x06")
    # runs: 2 bytes before packet 1; after it a run with a false header (bad checksum,
    # realigned onto packet 2); 2 bytes after packet 2
    assert p.frames == 2 and p.bad_checksum == 1
    assert p.resyncs == 4 and p.v_rms == 2


def test_reset_drops_a_partial_packet():
    p = Bl0942Parser()
    p.feed(packet(v_rms=1)[:10])
    assert p.pending() == 10
    p.reset()
    assert p.pending() == 0 and p.skipped == 10
    assert p.feed(packet(v_rms=2)) == 1


def test_parser_rejects_an_address_outside_0_to_3():
    with pytest.raises(bl0942.SettingError) as e:
        Bl0942Parser(address=4)
    assert e.value.args[0] == "E_ADDRESS"


frame_args = st.fixed_dictionaries({
    "i_rms": st.integers(0, 0xFFFFFF), "v_rms": st.integers(0, 0xFFFFFF),
    "watt": st.integers(-(1 << 23), (1 << 23) - 1), "cf": st.integers(0, 0xFFFFFF),
    "freq": st.integers(0, 0xFFFF), "status": st.integers(0, 255)})
chunk = st.one_of(frame_args.map(lambda a: packet(**a)), st.binary(max_size=30))


@settings(max_examples=150, deadline=None)
@given(st.lists(chunk, max_size=8), st.data())
def test_any_split_of_a_byte_stream_gives_the_same_packets(chunks, data):
    stream = b"".join(chunks)
    whole = Recorder()
    Bl0942Parser(on_frame=whole).feed(stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    split = Recorder()
    p = Bl0942Parser(on_frame=split)
    prev = 0
    for c in cuts + [len(stream)]:
        p.feed(stream[prev:c])
        prev = c
    single = Recorder()
    q = Bl0942Parser(on_frame=single)
    for b in stream:
        q.feed(bytes((b,)))
    assert split.seen == whole.seen == single.seen


@settings(max_examples=100, deadline=None)
@given(st.lists(frame_args, min_size=1, max_size=5), st.binary(max_size=40))
def test_valid_packets_after_noise_are_all_recovered(frames, noise):
    # noise followed by one packet that may be swallowed while re-aligning; every later
    # packet is found because a valid packet never starts inside a realigned window
    rec = Recorder()
    p = Bl0942Parser(on_frame=rec)
    p.feed(noise + b"\x00" * 23)  # 23 non-header bytes flush any partial packet
    p.feed(b"".join(packet(**a) for a in frames))
    assert rec.seen[-len(frames):] == [
        (a["i_rms"], a["v_rms"], 0, a["watt"], a["cf"], a["freq"], a["status"]) for a in frames]
    assert p.pending() == 0


# --- BL0942 front end ---------------------------------------------------------------------

def bl_setup(**kw):
    uart = LoopUart()
    fe = Bl0942(uart, **kw)
    return uart, fe, Sample()


def test_front_end_requests_the_full_packet_every_poll():
    uart, fe, s = bl_setup()
    assert fe.poll(s, 0) is False
    assert uart.take() == b"\x58\xaa"
    fe.poll(s, 1000)
    assert uart.take() == b"\x58\xaa" and fe.timeouts == 1


def test_first_packet_sets_the_base_and_energy_follows_cf_cnt_deltas():
    uart, fe, s = bl_setup(e_cal=(3600, 1))  # 1 Wh per pulse for round numbers
    fe.poll(s, 0)
    uart.feed(packet(cf=100, watt=0))
    assert fe.poll(s, 1000) is False  # base
    uart.feed(packet(cf=101, watt=2_000, v_rms=1_604_217, i_rms=5_024_269))
    assert fe.poll(s, 2000) is True
    assert (s.dt_ms, s.e_fwd, s.e_rev, s.q_lag, s.q_lead) == (1000, 3600, 0, 0, 0)
    assert s.p_w == 2_000 * 645 // 402_089
    assert abs(s.v_dv - 1010) <= 1  # 101.0 V at ~15 883 counts per volt
    assert abs(s.i_ma - 20_000) <= 1  # 20 A at 251 213 counts per ampere
    assert s.i2_ma == NO_VALUE


def test_negative_watt_books_reverse_energy():
    uart, fe, s = bl_setup(e_cal=(1000, 1))
    fe.poll(s, 0)
    uart.feed(packet(cf=0))
    fe.poll(s, 1000)
    uart.feed(packet(cf=3, watt=-623_394))
    assert fe.poll(s, 2000)
    assert (s.e_fwd, s.e_rev) == (0, 3000) and s.p_w < 0


def test_cf_cnt_wrap_at_24_bits_is_counted_exactly():
    uart, fe, s = bl_setup()
    fe.poll(s, 0)
    uart.feed(packet(cf=0xFFFFFE))
    fe.poll(s, 1000)
    uart.feed(packet(cf=3, watt=1000))
    assert fe.poll(s, 2000)
    assert s.e_fwd == 5 * 538_927 // 801


def test_implausible_cf_jump_is_rejected_counted_and_rebased():
    uart, fe, s = bl_setup(max_power_w=12_000)
    fe.poll(s, 0)
    uart.feed(packet(cf=1000))
    fe.poll(s, 1000)
    uart.feed(packet(cf=900))  # chip reset or backwards counter: a huge wrapped delta
    assert fe.poll(s, 2000) is False and fe.jumps == 1
    uart.feed(packet(cf=902, watt=5000))
    assert fe.poll(s, 3000) and s.e_fwd == 2 * 538_927 // 801


def test_missing_reply_counts_a_timeout_and_drops_the_partial_packet():
    uart, fe, s = bl_setup()
    fe.poll(s, 0)
    uart.feed(packet(cf=5)[:9])
    fe.poll(s, 1000)
    assert fe.timeouts == 1 and fe.parser.pending() == 0
    uart.feed(packet(cf=5))
    fe.poll(s, 2000)
    assert fe.parser.frames == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 25), min_size=1, max_size=40), st.integers(0, 0xFFFFFF))
def test_bl0942_energy_is_exact_over_any_pulse_sequence(pulses, start):
    uart, fe, s = bl_setup(max_power_w=20_000)
    fe.poll(s, 0)
    uart.feed(packet(cf=start))
    fe.poll(s, 1000)
    cf = start
    total = 0
    for k, n in enumerate(pulses):
        cf = (cf + n) & 0xFFFFFF
        uart.feed(packet(cf=cf, watt=1000))
        assert fe.poll(s, 2000 + 1000 * k)
        total += s.e_fwd
    assert total == sum(pulses) * 538_927 // 801


def test_configure_writes_unlock_mode_and_lock_frames():
    uart, fe, s = bl_setup(line_hz=60)
    fe.configure()
    out = uart.take()
    assert len(out) == 18
    unlock, mode, lock = out[0:6], out[6:12], out[12:18]
    assert unlock[:5] == bytes((0xA8, 0x1D, 0x55, 0, 0))
    assert unlock[5] == 0xFF - ((0xA8 + 0x1D + 0x55) & 0xFF)
    assert mode[:2] == bytes((0xA8, 0x19)) and mode[2] == 0x03 | 0x04 | 0x08 | 0x20 | 0x80
    assert (sum(mode[:5]) + mode[5]) & 0xFF == 0xFF
    assert lock[:5] == bytes((0xA8, 0x1D, 0, 0, 0))


@pytest.mark.parametrize("kw, code", [
    ({"v_cal": (100_000, 100_000)}, "E_CAL_V"), ({"i_cal": (0, 5)}, "E_CAL_I"),
    ({"p_cal": (1, -3)}, "E_CAL_P"), ({"e_cal": (1 << 20, 1 << 11)}, "E_CAL_E"),
    ({"line_hz": 55}, "E_LINE_HZ"), ({"max_power_w": 0}, "E_MAX_POWER")])
def test_bl0942_rejects_bad_settings_with_a_code(kw, code):
    with pytest.raises(bl0942.SettingError) as e:
        Bl0942(LoopUart(), **kw)
    assert e.value.args[0] == code


def test_bl0942_samples_are_accepted_by_metering():
    uart, fe, s = bl_setup()
    regs = EnergyRegisters(unit=0x04)
    m = Metering(regs, IntervalCapture(regs))
    fe.poll(s, 0)
    uart.feed(packet(cf=0))
    fe.poll(s, 1000)
    cf = 0
    for k in range(60):
        cf += 2  # ~1.35 kW
        uart.feed(packet(cf=cf, watt=841_000, v_rms=1_604_217, i_rms=3_391_000))
        assert fe.poll(s, 2000 + 1000 * k)
        assert not m.tick(s, Now(0, 5000, k, True)) & REJECTED
    assert regs.total_joules(FWD) == 120 * 538_927 // 801


# --- S0 pulse input -----------------------------------------------------------------------

def pulse_train(fe, starts, width=40):
    for t in starts:
        fe.edge(t, 1)
        fe.edge(t + width, 0)


def test_s0_counts_clean_pulses_into_exact_energy():
    fe = S0PulseInput(1000)
    s = Sample()
    fe.poll(s, 0)
    pulse_train(fe, [100, 3700])
    assert fe.poll(s, 4000)
    assert (s.e_fwd, s.e_rev, s.dt_ms) == (7200, 0, 4000)
    assert s.v_dv == NO_VALUE and s.i2_ma == NO_VALUE and s.q_lag == s.q_lead == 0


def test_s0_power_from_pulse_interval_and_current_from_nominal_voltage():
    fe = S0PulseInput(1000, nominal_v_dv=1000)
    s = Sample()
    fe.poll(s, 0)
    pulse_train(fe, [0, 3600, 7200])
    fe.poll(s, 7300)
    assert s.p_w == 1000 and s.i_ma == 10_000


def test_s0_power_decays_when_pulses_stop():
    fe = S0PulseInput(1000)
    s = Sample()
    fe.poll(s, 0)
    pulse_train(fe, [0, 3600])
    fe.poll(s, 3700)
    assert s.p_w == 1000
    fe.poll(s, 3600 + 36_000)
    assert s.p_w == 100  # at most one pulse's energy over the time since the last pulse
    fe.poll(s, 3600 + 3_600_001)
    assert s.p_w == 0


def test_s0_nominal_voltage_zero_reports_no_current():
    fe = S0PulseInput(1000, nominal_v_dv=0)
    s = Sample()
    fe.poll(s, 0)
    fe.poll(s, 1000)
    assert s.i_ma == NO_VALUE


def test_s0_sample_without_current_is_accepted_by_metering():
    fe = S0PulseInput(1000, nominal_v_dv=0)
    regs = EnergyRegisters(unit=0x04)
    m = Metering(regs, IntervalCapture(regs))
    s = Sample()
    fe.poll(s, 0)
    pulse_train(fe, [100])
    fe.poll(s, 1000)
    assert not m.tick(s, Now(0, 5000, 1, True)) & REJECTED
    assert regs.total_joules(FWD) == 3600


def test_contact_bounce_shorter_than_min_width_is_rejected_and_counted():
    fe = S0PulseInput(1000, min_width_ms=30)
    s = Sample()
    fe.poll(s, 0)
    for t, lv in ((100, 1), (102, 0), (103, 1), (105, 0), (106, 1), (150, 0), (152, 1),
                  (153, 0)):
        fe.edge(t, lv)
    fe.poll(s, 1000)
    assert fe.pulses == 1 and s.e_fwd == 3600
    assert fe.bounces == 3  # 102, 105 and 152 did not hold for 30 ms


def test_pulse_closer_than_min_gap_is_rejected_and_counted():
    fe = S0PulseInput(1000, min_width_ms=10, min_gap_ms=80)
    s = Sample()
    fe.poll(s, 0)
    pulse_train(fe, [100, 150, 300], width=20)
    fe.poll(s, 1000)
    assert fe.pulses == 2 and fe.too_close == 1 and s.e_fwd == 7200


def test_edge_older_than_the_previous_edge_is_ignored():
    fe = S0PulseInput(1000)
    s = Sample()
    fe.poll(s, 0)
    fe.edge(500, 1)
    fe.edge(400, 0)
    fe.edge(560, 0)
    fe.poll(s, 1000)
    assert fe.out_of_order == 1 and fe.pulses == 1


def test_active_low_input():
    fe = S0PulseInput(1000, active_level=0)
    s = Sample()
    fe.poll(s, 0)
    fe.edge(100, 0)
    fe.edge(150, 1)
    fe.poll(s, 1000)
    assert fe.pulses == 1


def test_pulse_is_counted_at_poll_once_it_has_held_min_width():
    fe = S0PulseInput(1000, min_width_ms=30)
    s = Sample()
    fe.poll(s, 0)
    fe.edge(990, 1)
    fe.poll(s, 1000)
    assert s.e_fwd == 0
    fe.poll(s, 2000)
    assert s.e_fwd == 3600 and fe.pulses == 1


def test_edges_source_is_drained_at_poll():
    class Ring:
        def __init__(self, edges):
            self.edges = list(edges)

        def drain(self, fn):
            n = len(self.edges)
            for t, lv in self.edges:
                fn(t, lv)
            self.edges = []
            return n

    ring = Ring([(100, 1), (140, 0), (3700, 1), (3740, 0)])
    fe = S0PulseInput(1000, edges=ring)
    s = Sample()
    fe.poll(s, 0)
    fe.poll(s, 4000)
    assert s.e_fwd == 7200 and ring.edges == []


def test_export_meter_books_reverse_energy_with_negative_power():
    fe = S0PulseInput(1000, export=True)
    s = Sample()
    fe.poll(s, 0)
    pulse_train(fe, [0, 3600])
    fe.poll(s, 3700)
    assert (s.e_fwd, s.e_rev, s.p_w) == (0, 7200, -1000)


@settings(max_examples=100, deadline=None)
@given(st.integers(10, 100_000), st.lists(st.integers(0, 300), min_size=1, max_size=30))
def test_s0_energy_is_conserved_for_any_constant(imp, per_poll):
    class Counter:
        n = 0

        def count(self):
            return self.n & 0xFFFF

    c = Counter()
    fe = S0PulseInput(imp, counter=c, max_power_w=100_000)
    s = Sample()
    fe.poll(s, 0)
    total = 0
    plausible = 10 * (100_000 * imp // 3_600_000 + 1)  # pulses in 10 s at 100 kW
    per_poll = [min(n, plausible) for n in per_poll]
    for k, n in enumerate(per_poll):
        c.n += n
        assert fe.poll(s, 10_000 * (k + 1))
        total += s.e_fwd
    assert total == sum(per_poll) * 3_600_000 // imp
    assert fe.pulses == sum(per_poll)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(80, 5000), st.integers(30, 60),
                          st.lists(st.integers(1, 9), max_size=4)), min_size=1, max_size=25))
def test_debounce_counts_each_true_pulse_once_whatever_the_bounce(pulses):
    """Each true pulse: gap before it (>= min_gap), width (>= min_width) and a burst of
    bounce edges shorter than min_width at its rising edge."""
    fe = S0PulseInput(1000, min_width_ms=25, min_gap_ms=80)
    s = Sample()
    fe.poll(s, 0)
    t = 1000
    energy = 0
    for gap, width, bounce in pulses:
        t += gap + 60
        for b in bounce:  # chatter: up b ms, down 1 ms
            fe.edge(t, 1)
            fe.edge(t + b, 0)
            t += b + 1
        fe.edge(t, 1)
        fe.edge(t + width, 0)
        t += width
        assert fe.poll(s, t + 1)
        energy += s.e_fwd
    assert fe.poll(s, t + 100)
    energy += s.e_fwd
    assert fe.pulses == len(pulses) and fe.too_close == 0
    assert energy == 3600 * len(pulses)
    assert fe.bounces == sum(len(b) for _, _, b in pulses)


def test_hardware_counter_wraps_at_16_bits():
    class Counter:
        v = 65_530

        def count(self):
            return self.v

    c = Counter()
    fe = S0PulseInput(1000, counter=c)
    s = Sample()
    fe.poll(s, 0)
    c.v = 4  # wrapped: 10 pulses
    assert fe.poll(s, 60_000) and s.e_fwd == 36_000


def test_hardware_counter_jump_is_rejected_counted_and_rebased():
    class Counter:
        v = 0

        def count(self):
            return self.v

    c = Counter()
    fe = S0PulseInput(1000, counter=c, max_power_w=12_000)
    s = Sample()
    fe.poll(s, 0)
    c.v = 30_000
    assert fe.poll(s, 1000) is False and fe.jumps == 1
    c.v = 30_002
    assert fe.poll(s, 2000) and s.e_fwd == 7200


def test_hardware_counter_power_from_pulses_over_time_since_last_change():
    class Counter:
        v = 0

        def count(self):
            return self.v

    c = Counter()
    fe = S0PulseInput(1000, counter=c)
    s = Sample()
    fe.poll(s, 0)
    c.v = 1
    fe.poll(s, 1000)
    c.v = 3
    fe.poll(s, 4600)  # 2 pulses (7200 J) over 3.6 s since the last change
    assert s.p_w == 2000


@pytest.mark.parametrize("kw, code", [
    ({"imp_per_kwh": 5}, "E_PULSE_CONSTANT"), ({"imp_per_kwh": 200_000}, "E_PULSE_CONSTANT"),
    ({"min_width_ms": -1}, "E_DEBOUNCE"), ({"nominal_v_dv": 5000}, "E_NOMINAL_VOLTAGE"),
    ({"max_power_w": 0}, "E_MAX_POWER"),
    ({"imp_per_kwh": 10_000, "min_gap_ms": 80}, "E_DEBOUNCE_LIMITS_POWER")])
def test_s0_rejects_bad_settings_with_a_code(kw, code):
    with pytest.raises(s0.SettingError) as e:
        S0PulseInput(**kw)
    assert e.value.args[0] == code


def test_fast_led_constant_works_with_a_short_debounce():
    fe = S0PulseInput(10_000, min_width_ms=5, min_gap_ms=20, max_power_w=12_000)
    s = Sample()
    fe.poll(s, 0)
    pulse_train(fe, [0, 360, 720], width=10)
    fe.poll(s, 1000)
    assert s.e_fwd == 1080 and s.p_w == 1000


# --- simulated household -----------------------------------------------------------------

def run_sim(seconds, start_s=9000 * 86400, **kw):
    clock = VirtualClock(wall_s=start_s)
    fe = SimulatedHousehold(clock, **kw)
    s = Sample()
    fe.poll(s, clock.ticks_ms())
    out = []
    for _ in range(seconds):
        clock.advance(1000)
        assert fe.poll(s, clock.ticks_ms())
        out.append((s.dt_ms, s.e_fwd, s.e_rev, s.q_lag, s.q_lead, s.p_w, s.i_ma, s.i2_ma,
                    s.v_dv))
    return fe, out


def test_same_seed_gives_the_same_household_and_other_seeds_differ():
    _, a = run_sim(1800, seed=11, pv_w=3000)
    _, b = run_sim(1800, seed=11, pv_w=3000)
    _, c = run_sim(1800, seed=12, pv_w=3000)
    assert a == b and a != c


def test_first_poll_only_sets_the_time_base():
    clock = VirtualClock(wall_s=0)
    fe = SimulatedHousehold(clock)
    assert fe.poll(Sample(), 0) is False


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(1, 5000), min_size=1, max_size=300), st.integers(0, 10_000))
def test_simulated_energy_equals_power_times_time_exactly(dts, seed):
    clock = VirtualClock(wall_s=9000 * 86400 + 11 * 3600)
    fe = SimulatedHousehold(clock, seed=seed, pv_w=6000)
    s = Sample()
    fe.poll(s, 0)
    now = 0
    e = [0, 0]
    pdt = [0, 0]
    for dt in dts:
        clock.advance(dt)
        now += dt
        assert fe.poll(s, now)
        assert s.dt_ms == dt
        e[0] += s.e_fwd
        e[1] += s.e_rev
        pdt[0] += max(s.p_w, 0) * dt
        pdt[1] += max(-s.p_w, 0) * dt
    assert e[0] * 1000 + fe.remainder_mj(0) == pdt[0]
    assert e[1] * 1000 + fe.remainder_mj(1) == pdt[1]


def test_one_day_has_a_night_base_and_an_evening_peak():
    fe, out = run_sim(86_400, seed=3)
    hourly = [sum(r[5] for r in out[h * 3600:(h + 1) * 3600]) // 3600 for h in range(24)]
    night = max(hourly[1:5])
    assert 60 < night < 400
    assert max(hourly[18:22]) > 2 * night
    assert max(hourly[6:9]) > 2 * night
    assert all(r[2] == 0 for r in out)  # no PV: nothing exported
    kwh = sum(r[1] for r in out) / 3.6e6
    assert 5 < kwh < 25


def test_pv_exports_at_midday_and_ev_charges_at_night():
    fe, out = run_sim(86_400, seed=4, pv_w=5000, ev_w=3000, ev_wh=6000)
    assert sum(r[2] for r in out[11 * 3600:13 * 3600]) > 0
    assert all(r[2] == 0 for r in out[0:5 * 3600])
    late = out[23 * 3600 + 60:23 * 3600 + 600]
    assert min(r[5] for r in late) >= 3000
    ev_j = sum(r[1] for r in out[23 * 3600:]) - 3000 * 3600
    assert ev_j > 0


def test_voltage_current_and_reactive_energy_are_consistent():
    fe, out = run_sim(86_400, seed=5, pv_w=4000)
    for dt, ef, er, ql, qd, p, i, i2, v in out[::7]:
        assert 950 <= v <= 1070
        assert i2 == NO_VALUE
        s_va = i * v / 10_000  # apparent power from the reported current
        q = (ql + qd) * 1000 / dt  # reactive power from the reactive energy (+/- 1 var)
        assert s_va == pytest.approx((p * p + q * q) ** 0.5, rel=0.02, abs=15)
        assert ql == 0 or qd == 0
    assert sum(r[3] for r in out) > 0 and sum(r[4] for r in out) > 0


def test_three_wire_mode_reports_both_legs_at_200_v():
    fe, out = run_sim(3 * 3600, start_s=9000 * 86400 + 18 * 3600, three_wire=True, seed=2)
    assert all(1900 <= r[8] <= 2140 for r in out)
    assert all(r[7] >= 0 for r in out)
    assert sum(r[7] for r in out) > 0 and sum(r[6] for r in out) > 0


@pytest.mark.parametrize("kw, code", [
    ({"pv_w": -1}, "E_PV_W"), ({"ev_w": 9000}, "E_EV"), ({"volts_dv": 500}, "E_VOLTS")])
def test_simulated_rejects_bad_settings_with_a_code(kw, code):
    with pytest.raises(simulated.SettingError) as e:
        SimulatedHousehold(VirtualClock(wall_s=0), **kw)
    assert e.value.args[0] == code


def test_a_simulated_day_is_fully_accepted_by_metering():
    clock = VirtualClock(wall_s=9000 * 86400)
    fe = SimulatedHousehold(clock, seed=9, pv_w=4500, ev_w=3000)
    regs = EnergyRegisters(unit=0x04)
    m = Metering(regs, IntervalCapture(regs))
    s = Sample()
    fe.poll(s, 0)
    total = [0, 0]
    for _ in range(86_400):
        clock.advance(1000)
        assert fe.poll(s, clock.ticks_ms())
        total[0] += s.e_fwd
        total[1] += s.e_rev
        assert not m.tick(s, NOW.read(clock)) & REJECTED
    assert regs.total_joules(FWD) == total[0] and regs.total_joules(REV) == total[1]
