# Hotline Linkage Switch: the two commands are `make demo` and `make test`.
# Both install what they need first (Debian packages, the venv, the Asterisk root).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-unit test-integration lint lab-up lab-down lab-status bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/install-deps.sh
	bash scripts/install-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

lab-up: setup
	$(BIN)/hotline lab up

lab-down:
	@if [ -x $(BIN)/hotline ]; then $(BIN)/hotline lab down; fi

lab-status: setup
	$(BIN)/hotline lab status

# The main job: bring the lab up and play the scripted scenes.
demo: setup
	$(BIN)/hotline lab up
	$(BIN)/hotline demo

# Unit tests, then integration tests on the real lab; the lab is stopped afterwards.
test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy telephony ivr routing
	$(BIN)/hotline lab up
	status=0; $(BIN)/pytest -ra -p no:cacheprovider || status=$$?; \
	  $(BIN)/hotline lab down; exit $$status

test-unit: setup
	$(BIN)/pytest -ra -m "not integration"

test-integration: setup
	$(BIN)/hotline lab up
	$(BIN)/pytest -ra -m integration

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy telephony ivr routing

bench: setup
	$(BIN)/hotline lab up
	for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean: lab-down
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
