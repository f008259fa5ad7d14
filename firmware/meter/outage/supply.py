# Supply monitor on an ADC: turns a sampled supply voltage into a power-good level with hysteresis.
#
# An alternative to a comparator on the power-good pin: the unregulated supply is divided
# down to an ADC input; read_mv() returns its value scaled back to supply millivolts.
# The level drops when the voltage falls below fail_mv and rises again only above
# restore_mv (> fail_mv), so noise around one threshold cannot flap the Last Gasp input.

from meter.hal import PowerGood


class AdcPowerGood(PowerGood):
    def __init__(self, read_mv, fail_mv, restore_mv):
        if not 0 < fail_mv < restore_mv:
            raise ValueError("E_SUPPLY_THRESHOLDS")
        self._read = read_mv
        self.fail_mv = fail_mv
        self.restore_mv = restore_mv
        self._level = 1
        self.last_mv = 0

    def value(self):
        mv = self._read()
        self.last_mv = mv
        if self._level and mv < self.fail_mv:
            self._level = 0
        elif not self._level and mv > self.restore_mv:
            self._level = 1
        return self._level

    def irq(self, handler):
        raise OSError("E_NO_IRQ: an ADC monitor is polled")
