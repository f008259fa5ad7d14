# The meter parts the Last Gasp sequence acts on: metering, registers, journal, uplink, B-route.
#
# LastGaspPlatform is the whole contract between the outage state machine and the rest of
# the meter, built from the parts themselves (no back-reference to the composition):
#   hold()          stop background work, freeze metering (samples ignored, nothing counted)
#   commit()        the registers and the partial interval into the journal's pre-erased
#                   reserve (meter.storage.store.Store.commit_now: zero erases)
#   persist(p)      the Last Gasp machine's state bytes (Store.save_lastgasp)
#   saved_state()   what persist() last wrote (Store.lastgasp_state), or None
#   send(p)         hand a message to the A-route uplink -> True when it took it
#   notify(kind)    tell the HEMS over the B-route (wire.MSG_LAST_GASP / MSG_RESTORED)
#   radios_off()    suspend the B-route; release() undoes hold() and radios_off()
#   e0(), e3(), unit, coefficient   the register readings the alarm carries
# A store fault (JournalFull, a flash error) never stops the sequence: it is counted in
# commit_failures and the alarm still goes out. Nothing here sleeps: the shell does.
#
# The runtime reads two flags: background (False: idle() must not compact the journal, a
# sector erase would eat the hold-up budget) and radios (False: do not serve the B-route).

from meter.metering.registers import FWD, REV


class LastGaspPlatform:
    """metering: meter.metering.samples.Metering; regs: EnergyRegisters; store:
    meter.storage.store.Store or None; uplink: meter.hal.Uplink or None; broute: the
    B-route pump (meter.broute.pump.BRoute) or None."""

    def __init__(self, metering, regs, store=None, uplink=None, broute=None):
        self.metering = metering
        self.regs = regs
        self.store = store
        self.uplink = uplink
        self.broute = broute
        self.background = True  # the runtime may run journal compaction in idle()
        self.radios = True  # the runtime serves the B-route
        self.commits_now = 0  # Last Gasp commits asked for
        self.commit_failures = 0  # commits or state saves the journal could not take

    def hold(self):
        self.background = False
        self.metering.frozen = True

    def release(self):
        """Mains is back without a reboot: radios on, metering and background work resume
        (nothing was counted while frozen, so nothing is counted twice)."""
        self.radios = True
        if self.broute is not None:
            self.broute.resume()
        self.metering.frozen = False
        self.background = True

    def commit(self):
        self.commits_now += 1
        if self.store is not None:
            try:
                self.store.commit_now()
            except Exception:  # JournalFull, a flash fault: the alarm must still go out
                self.commit_failures += 1

    def persist(self, payload):
        if self.store is not None:
            try:
                self.store.save_lastgasp(payload)
            except Exception:
                self.commit_failures += 1

    def saved_state(self):
        return self.store.lastgasp_state() if self.store is not None else None

    def send(self, payload):
        up = self.uplink
        if up is None or not up.connected():
            return False
        return bool(up.send("alarm", payload))

    def notify(self, kind):
        if self.broute is not None:
            self.broute.notify_power(kind)

    def radios_off(self):
        self.radios = False
        if self.broute is not None:
            self.broute.suspend()  # the B-route knows its link is gone

    def e0(self):
        return self.regs.count[FWD]

    def e3(self):
        return self.regs.count[REV]

    @property
    def unit(self):
        return self.regs.unit

    @property
    def coefficient(self):
        return self.regs.coefficient
