# Smart-meter firmware: host set-up, tests, simulation, benchmarks, board deployment.
# `make sim` and `make test` create .venv and install the pinned host dependencies.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=
BOARD  ?= esp32_devkitc
PORT   ?= auto

.PHONY: all venv test sim bench campaign fuzz soak wearout kill fleet headend console slow mpy deploy table clean

all: test

$(STAMP): requirements-host.txt tools/wasm32/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-host.txt
	npm ci --prefix tools/wasm32 --silent --no-audit --no-fund
	touch $(STAMP)

venv: $(STAMP)

## test: every host test: CPython with HAL stubs, MicroPython unix port scenarios, mpy-cross
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not slow" host_tests

## sim: run the host-simulated meter (ARGS="--help" lists options)
sim: $(STAMP)
	$(BIN)/python tools/sim.py $(ARGS)

## bench: print performance figures (heap per tick, us per tick, .mpy size, days/s)
bench: $(STAMP)
	$(BIN)/python tools/bench.py $(ARGS)
	$(BIN)/python tools/wear.py

## fuzz: 100k random and mutated ECHONET Lite frames through the B-route service
fuzz: $(STAMP)
	$(BIN)/python tools/echonet_fuzz.py --frames 100000 $(ARGS)

## campaign: cut power after every flash program and erase step of a simulated day
campaign: $(STAMP)
	$(BIN)/python tools/power_cut_campaign.py $(ARGS)

## soak: a simulated month on the flash journal with outages, reboots and clock changes
soak: $(STAMP)
	$(BIN)/python tools/soak.py $(ARGS)

## wearout: run the product meter on a flash that wears out, to the end of its life
wearout: $(STAMP)
	$(BIN)/python tools/wearout.py $(ARGS)

## kill: SIGKILL the running simulation hundreds of times; served E0/E3 never go back
kill: $(STAMP)
	$(BIN)/python tools/kill_campaign.py $(ARGS)

## slow: the exhaustive tests deselected from make test
## fleet: 100 simulated meters x 1 simulated day against Mosquitto and the head-end (service levels)
fleet: $(STAMP)
	$(BIN)/python tools/fleet.py --meters 100 --hours 24 --progress $(ARGS)

## headend: the A-route head-end tool (ARGS="--broker 127.0.0.1:1883 watch", see README)
headend: $(STAMP)
	$(BIN)/python tools/headend_mqtt.py $(ARGS)

## console: the bench console client (ARGS="--port /dev/ttyUSB0 --key meter.key accept")
console: $(STAMP)
	$(BIN)/python tools/meter_console.py $(ARGS)

slow: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m slow host_tests

## mpy: compile the firmware to .mpy files under build/mpy
mpy: $(STAMP)
	$(BIN)/python tools/deploy.py --build-only --board $(BOARD)

## deploy: compile and copy the firmware to a board over USB serial (mpremote)
deploy: $(STAMP)
	$(BIN)/python tools/deploy.py --board $(BOARD) --port $(PORT) $(ARGS)

## table: write the board's partition table to a stock MicroPython image (erases vfs, journal)
table: $(STAMP)
	$(BIN)/python tools/deploy.py --write-table --board $(BOARD) --port $(PORT) $(ARGS)

clean:
	rm -rf build .pytest_cache .hypothesis
