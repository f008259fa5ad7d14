# The A-route sub-assembly: the MQTT client and session on the board's link, and the service.
#
# The composition root (meter.assembly.build_meter) calls build_aroute() on a board with a
# link (hal.link) and a key; the result is the meter's uplink (meter.hal.Uplink) for the
# Last Gasp machine and the alarm sender, and Meter.serve() polls it. Settings (the board
# definition or any config object; absent: meter.assembly.DEFAULTS):
#   AROUTE_KEEPALIVE_S   MQTT keep-alive (s)
#   AROUTE_BACKOFF_MS    (base, cap, first connect max) of the reconnect back-off
#   AROUTE_USER          MQTT user name (bytes or None; the broker's ACL names the meter)
#   AROUTE_PASSWORD      MQTT password (bytes or None)

from meter.aroute import wire
from meter.aroute.mqtt import Client
from meter.aroute.service import ARoute
from meter.aroute.session import Backoff, Session
from meter.storage.persist import NULL_SAVER
from meter.storage.records import KIND_CONFIG, KIND_OUTBOX


def build_aroute(hal, core, store, meter_id, mac, keepalive_s=60, backoff=(2_000, 300_000,
                 60_000), user=None, password=None):
    """The ARoute of one meter over hal.link (meter.hal.Link), sealed with mac (the meter
    key's meter.mac.Hmac). store: Store or None (then nothing the A-route keeps survives a
    reset). Call bind(meter) once the meter is built and boot(now) after its restore."""
    base = wire.topic_base(meter_id)
    client = Client(bytes(meter_id), keepalive_s=keepalive_s, clean=False,
                    will=(base + b"up/will", wire.will_payload(meter_id), 1), username=user,
                    password=password)
    b = Backoff(hal.random, base_ms=backoff[0], cap_ms=backoff[1], first_max_ms=backoff[2])
    session = Session(hal.link, client, b, hal.clock.ticks_ms())
    saver = store.saver(KIND_OUTBOX) if store is not None else NULL_SAVER
    saver_cfg = store.saver(KIND_CONFIG) if store is not None else NULL_SAVER
    return ARoute(meter_id, mac, session, client, hal.clock, core, store, saver, saver_cfg,
                  hal.random, collector=hal.collector, reset_kind=hal.reset_kind)
