# Two entry points for a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_SDK := sdk/node
NODE_STAMP := $(NODE_SDK)/node_modules/.installed

.PHONY: serve test lint format bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# TypeScript, for the Node SDK's type checks and the TypeScript plugin tests.
$(NODE_STAMP): $(NODE_SDK)/package.json $(NODE_SDK)/package-lock.json
	cd $(NODE_SDK) && npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

serve: $(STAMP)
	$(BIN)/modelport serve

# pytest and the Node SDK's tests run where only loopback exists (tests/_netns.py):
# nothing a test starts can reach the network, whichever library or process opens the socket.
test: $(STAMP) $(NODE_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	cd $(NODE_SDK) && ./node_modules/.bin/tsc -p test/types
	cd $(NODE_SDK) && MODELPORT_BIN=$(abspath $(BIN))/modelport \
		$(abspath $(BIN))/python $(CURDIR)/tests/_netns.py node --test test/
	$(BIN)/python tests/_netns.py $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP)
	$(BIN)/python -m bench

# A mixed load against a real gateway for $SOAK_SECONDS (300 by default); fails on a leak.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build dist $(NODE_SDK)/node_modules
