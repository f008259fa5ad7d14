# The A-route: the meter's MQTT uplink to the head-end (docs/aroute.md).
