# The storage sub-assembly: the journal on the whole flash and its one owner, the Store.
#
# Every composition (the meter, the simulation, benchmarks, the power-cut campaign, the wear
# projection) builds storage here, so all of them keep the product's record set: the
# keep map of meter.storage.store.keep_map() sized from the parts it persists.

from meter.storage.journal import Journal
from meter.storage.store import HALF_BLOCKS, Store, keep_map


def build_storage(flash, mac, regs, capture, events, half_blocks=HALF_BLOCKS, retained=None):
    """A Store (not yet restored: call restore(now) at boot) over a Journal on the whole of
    `flash` (meter.hal.BlockDevice) sealed with `mac` (meter.mac.Hmac under the per-meter
    key), persisting regs (EnergyRegisters), capture (IntervalCapture) and events
    (EventLog). The keep map follows the capture's 5-minute ring and the event log's size;
    half_blocks (half-hour blocks of 12 h kept on flash) may be lowered for a small test
    partition; retained (meter.hal.RetainedMemory or None) keeps the registers' running copy
    across resets. Raises JournalError("E_JOURNAL_TOO_SMALL") when the flash cannot hold it."""
    keep = keep_map(capture.five.entries, events.entries, half_blocks)
    return Store(Journal(flash, 0, flash.sector_count(), mac, keep), regs, capture, events,
                 retained)
