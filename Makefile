# The two commands: `make demo` and `make test`. Each sets up what it needs, idempotently.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
# pip warns about find-links folders this machine's pip config names but does not have.
QUIET_PIP := 2>&1 | { grep -v "is ignored: it is neither a file" || true; }
# The venv must come from the system Python: a Python under /root (mode 700) cannot be
# executed by the OS users the hub runs researchers' servers as.
PYTHON := $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Debian packages: Chromium for the browser tests; nftables and iproute2 for the servers'
# network isolation; PostgreSQL for the metadata store's test against a real server.
SYSTEM_PACKAGES := chromium nftables iproute2 postgresql

.PHONY: demo test setup venv node system acro clean

demo: setup
	TRE_CLI_IDENTITY=demo $(BIN)/tre demo

test: setup
	$(BIN)/python -m pytest

setup: venv node system acro

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip $(QUIET_PIP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]' $(QUIET_PIP)
	touch $@

# ACRO, the peer the output checks are compared with, pins pandas<=2.3.3: its own venv.
ACRO_VENV := .venv-acro
ACRO_VERSION := 1.0.2
acro: $(ACRO_VENV)/.installed-$(ACRO_VERSION)
$(ACRO_VENV)/.installed-$(ACRO_VERSION):
	rm -rf $(ACRO_VENV)
	$(PYTHON) -m venv $(ACRO_VENV)
	$(ACRO_VENV)/bin/pip install --quiet --disable-pip-version-check acro==$(ACRO_VERSION) $(QUIET_PIP)
	touch $@

node: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

system:
	@bash scripts/system-packages.sh $(SYSTEM_PACKAGES)

clean:
	rm -rf $(VENV) $(ACRO_VENV) node_modules var
