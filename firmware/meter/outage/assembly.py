# The outage sub-assembly: the Last Gasp machine on its platform, and the alarm sender.
#
# The composition root calls build_outage() and build_alarms() with parts it already built;
# nothing here touches hardware. Settings come from the board definition (LASTGASP dict,
# HOLDUP budget); a bad one raises meter.errors.SettingError with an E_ code.

from meter.errors import SettingError
from meter.outage.alarms import AlarmSender
from meter.outage.lastgasp import LastGasp
from meter.outage.platform import LastGaspPlatform

SETTINGS = ("debounce_ms", "restore_ms", "repeats", "repeat_ms", "long_outage_s", "rate_max",
            "rate_window_min")


def build_outage(meter_id, mac, events, regs, metering, store, uplink, broute, budget_ms,
                 lastgasp_settings=None):
    """The LastGasp machine (its .platform the LastGaspPlatform over metering, regs, store,
    uplink and broute; each of the last three may be None). lastgasp_settings: a dict with
    any of SETTINGS (absent keys take LastGasp's defaults). Raises SettingError
    ("E_LASTGASP_SETTING", "E_METER_ID")."""
    kw = lastgasp_settings or {}
    for name in kw:  # integers only: every setting is used on the ms-paced path
        if name not in SETTINGS or not isinstance(kw[name], int):
            raise SettingError("E_LASTGASP_SETTING")
    if not isinstance(budget_ms, int) or budget_ms <= 0:
        raise SettingError("E_LASTGASP_SETTING")
    platform = LastGaspPlatform(metering, regs, store, uplink, broute)
    return LastGasp(platform, meter_id, mac, events, budget_ms, **kw)


def build_alarms(meter_id, mac):
    """The sender of breaker-fault (and other non-outage) alarms. Raises SettingError
    ("E_METER_ID")."""
    return AlarmSender(meter_id, mac)
