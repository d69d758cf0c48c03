# sharpeyes: `make demo` runs the system on demo cameras, `make test` installs what the tests need and runs them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# GStreamer's RTSP server (the tests' RTSP peer); ffmpeg for ipycam (the ONVIF emulator) and iproute2 for the
# loopback-only network namespace the WS-Discovery test runs in.
APT_TEST_PKGS := python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
                 gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly ffmpeg iproute2
PYTEST_ARGS ?=

.PHONY: help venv demo test lint bench docs system-deps clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# The detectors' compiled kernels (detectors/_kernels.c) need a C compiler and the Python headers.
$(STAMP): pyproject.toml setup.py detectors/_kernels.c
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), f"sharpeyes needs Python 3.11+, {sys.executable} is {sys.version.split()[0]}: set PYTHON=python3.11"'
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; \
	  else echo "Python's venv module is missing: run  sudo apt-get install -y python3-venv"; exit 1; fi; }
	@command -v cc >/dev/null && $(PYTHON) -c 'import os, sysconfig; assert os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc python3-dev; \
	  else echo "A C compiler and the Python headers are missing: run  sudo apt-get install -y gcc python3-dev"; exit 1; fi; }
	$(PYTHON) -m venv $(VENV)
	@echo "installing sharpeyes and its dependencies into $(VENV) (log: $(VENV)/pip.log)..."
	@$(PY) -m pip install -q --upgrade pip > $(VENV)/pip.log 2>&1 && \
	  $(PY) -m pip install -q -e '.[test,lint]' >> $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@touch $@

venv: $(STAMP) ## create .venv and install sharpeyes with its test and lint tools

system-deps: ## install the test peers' system packages (apt, as root; otherwise prints the command)
	@if command -v ffmpeg >/dev/null && command -v ip >/dev/null && /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer, Gst; Gst.init(None); assert all(Gst.ElementFactory.find(e) for e in ('x264enc', 'h264parse', 'rtph264pay', 'multifilesrc'))" 2>/dev/null; then \
	  echo "test peers (GStreamer RTSP server, ffmpeg, iproute2): present"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "installing the test peers (apt-get): $(APT_TEST_PKGS)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_TEST_PKGS); \
	else \
	  echo "The tests need GStreamer's RTSP server, ffmpeg and iproute2. Run:"; \
	  echo "  sudo apt-get install -y --no-install-recommends $(APT_TEST_PKGS)"; exit 1; \
	fi

demo: $(STAMP) ## run API, worker and embedded Valkey on demo cameras; prints the wall's URL
	$(VENV)/bin/sharpeyes demo

test: $(STAMP) system-deps ## install test dependencies and run the test suite
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP) system-deps ## run the benchmarks (long) and print their tables
	$(PY) -m benchmarks

docs: $(STAMP) ## regenerate the README's settings table from config/settings.py
	$(PY) -m config.doc README.md

clean: ## remove the virtualenv and runtime data
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
