# A host fake of the A-route uplink: records what the firmware hands over, can be taken down.

from meter.hal import Uplink


class FakeUplink(Uplink):
    def __init__(self, up=True):
        self.up = up
        self.sent = []  # (topic, bytes) accepted while up
        self.refused = 0  # sends attempted while down

    def connected(self):
        return self.up

    def send(self, topic, payload):
        if not self.up:
            self.refused += 1
            return False
        self.sent.append((topic, bytes(payload)))
        return True
