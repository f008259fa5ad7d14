# Frozen firmware for the ESP32-DevKitC (WROOM-32): the port's own modules, the meter core, the
# ESP32 HAL, this board's definition (imported as board_config) and the entry point.
# Build: make BOARD=<port board> FROZEN_MANIFEST=<this file> in ports/esp32, with
# partitions.csv of this folder as the partition table (it holds the journal partition).
# Paths are relative to this file.

include("$(PORT_DIR)/boards/manifest.py")
package("meter", base_path="../../firmware")
package("esp32hal", base_path="..")
module("board_config.py")
module("main.py", base_path="../../firmware")
require("hmac")
