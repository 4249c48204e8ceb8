# acom: the two commands a new user runs are `make demo` and `make test`.
# Both install what is missing (Debian packages when run as root, a .venv with pinned Python packages),
# are idempotent, and take seconds when everything is already there.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA ?= data
# Debian packages the toolkit runs: TTS engines and texts for the speech set, sox, real noise recordings,
# the Cortex-M cross compiler that builds the exported C sources, socat (pty pairs for serial tests), the
# codec baselines' native parts: codec2 (c2enc/c2dec and libcodec2 for the 450 bit/s mode) and libopus0, and
# the boards' toolchains and emulators that run the device's C wire code (aarch64 for the Raspberry Pis under
# qemu-aarch64, Cortex-M firmware under qemu-system-arm).
DEBS := flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts espeak-ng sox libsox-fmt-all \
        bible-kjv openttd-opensfx gcc-arm-none-eabi libnewlib-arm-none-eabi socat codec2 libopus0 \
        g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user qemu-system-arm nlohmann-json3-dev

.PHONY: setup debs venv edge-runtime demo test bench clean

setup: debs venv edge-runtime

debs:
	@missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages: $$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  else \
	    echo "missing Debian packages (run as root, or: sudo apt-get install $$missing)"; exit 1; \
	  fi; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# acom-edge for the Raspberry Pis links the ExecuTorch runtime built for aarch64: the executorch wheel of the
# pinned version for manylinux_2_28_aarch64 (17 MB), downloaded once and unpacked into the cache (lib/,
# include/, share/cmake/); acom.firmware_host.edge_runner finds it there
ACOM_CACHE ?= $(HOME)/.cache/acom
ET_VERSION = $(shell sed -n 's/^executorch==//p' requirements.txt)
ET_ARM := $(ACOM_CACHE)/executorch-$(ET_VERSION)-aarch64

edge-runtime: $(ET_ARM)/executorch/lib/libexecutorch.so

$(ET_ARM)/executorch/lib/libexecutorch.so: requirements.txt | venv
	$(PY) -m pip download -q --disable-pip-version-check executorch==$(ET_VERSION) \
	  --platform manylinux_2_28_aarch64 --only-binary=:all: --no-deps -d $(ACOM_CACHE)/wheels
	ACOM_CACHE=$(ACOM_CACHE) $(PY) -m acom.firmware_host.edge_runner \
	  --unpack $(ACOM_CACHE)/wheels/executorch-$(ET_VERSION)-*manylinux_2_28_aarch64.whl
	@touch $@

demo: setup
	$(VENV)/bin/acom data synth-speech --out $(DATA)/speech --minutes 5 --seed 0
	$(VENV)/bin/acom data synth-urban --out $(DATA)/urban --clips-per-class 20 --seed 0
	$(VENV)/bin/acom data summary $(DATA)/speech $(DATA)/urban
	@echo
	@echo "== the shipped split models on the demo sets (per number of quantizer stages) =="
	$(VENV)/bin/acom eval --task asr --checkpoint core/pretrained/asr/split.pt --data $(DATA)/speech --subset test-clean --show 9
	$(VENV)/bin/acom eval --task ac --checkpoint core/pretrained/ac/split.pt --data $(DATA)/urban --subset test
	@echo
	@echo "== a baseline: the device sends Codec2 audio, the server decodes it and runs the uncut model as trained =="
	$(VENV)/bin/acom eval --task ac --checkpoint core/pretrained/ac/full.pt --data $(DATA)/urban --codec codec2-1200
	@echo
	@echo "== the device half for a Raspberry Pi 4 and a Cortex-M55 + Ethos-U55 (int8, verified by its codes) =="
	$(VENV)/bin/acom boards
	@# exit 3 would mean written but failed verification (shown in its output, not hidden): the demo goes on
	$(VENV)/bin/acom-export --board rpi4 --data $(DATA)/speech --out export-rpi4-asr --force --keep-failed || [ $$? = 3 ]
	$(VENV)/bin/acom-export --board cortex-m55-u55 --task ac --data $(DATA)/urban --out export-cortex-m55-u55-ac \
	  --force --keep-failed || [ $$? = 3 ]
	@echo
	@echo "== device and server on this machine: the rpi4 bundle's edge.pte -> packets over UDP -> acom serve =="
	$(PY) -m acom.firmware_host.loopback_demo --bundle export-rpi4-asr $$(ls $(DATA)/speech/test-clean/*/*/*.flac | head -3)
	@echo
	@echo "== the Pi's device program: acom-edge (ExecuTorch, XNNPACK's Arm kernels) under qemu-aarch64 -> UDP -> acom serve =="
	$(VENV)/bin/acom flash --bundle export-rpi4-asr --emulate --entropy $$(ls $(DATA)/speech/test-clean/*/*/*.flac | head -3)
	rm -rf build/acom-edge-rpi4
	$(VENV)/bin/acom flash --bundle export-rpi4-asr --out build/acom-edge-rpi4 --to 192.168.1.10:5004
	@echo
	@echo "== the device's C wire code on every board's emulator against the test vectors =="
	$(PY) -m acom.firmware_host.wire_c
	@echo
	@echo "== the whole device in C: the bundle's Cortex-M55 firmware under qemu-system-arm, live audio in on its UART -> codes -> range-coded packets out -> acom serve =="
	$(VENV)/bin/acom flash --bundle export-cortex-m55-u55-ac --emulate --entropy $$(ls $(DATA)/urban/audio/fold10/*.wav | head -4)
	@echo
	@echo "== that firmware's codes against TFLite Micro's on test clips (its front end and graph in C) =="
	$(PY) -m acom.firmware_host.edge_c --bundle export-cortex-m55-u55-ac --data $(DATA)/urban --frontend c
	@echo
	@echo "Codec baselines: docs/baselines.md (acom bench codecs)."

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n 2 -p no:logging --dist loadgroup tests

bench: setup
	$(PY) bench/synth_speed.py --minutes 10
	$(VENV)/bin/acom data synth-speech --out $(DATA)/speech --minutes 5 --seed 0
	$(VENV)/bin/acom data synth-urban --out $(DATA)/urban --clips-per-class 20 --seed 0
	$(PY) bench/export_boards.py --all-stages
	$(PY) bench/fuzz_wire.py
	$(PY) bench/serve_load.py --task asr --streams 25,50,75,100,125
	$(PY) bench/serve_load.py --task ac --streams 100,200,300,400
	$(PY) bench/tail_throughput.py --task asr --streams 1,10,50,100,200,500
	$(PY) bench/tail_throughput.py --task ac --streams 1,10,50,100,200,500,1000
	$(PY) bench/serve_loss.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache export-*-asr export-*-ac
