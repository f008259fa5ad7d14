# Board entry point: build the board's HAL from its definition and run the meter.
from meter.app import run_board

run_board()
