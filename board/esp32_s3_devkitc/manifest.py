# Frozen firmware for the ESP32-S3-DevKitC-1 N8R8: the port's own modules, the meter core, the
# ESP32 HAL, this board's definition (imported as board_config) and the entry point.
# mpconfigboard.cmake of this folder selects it: make -C ports/esp32 BOARD_DIR=<this folder>
# (docs/boards.md). Paths are relative to this file. No micropython-lib hmac: meter/mac.py
# builds HMAC-SHA256 over the built-in hashlib (faster, and tested in CI).

include("$(PORT_DIR)/boards/manifest.py")
package("meter", base_path="../../firmware")
package("esp32hal", base_path="..")
module("board_config.py")
module("main.py", base_path="../../firmware")
