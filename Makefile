# oml-node developer commands. `make install` is idempotent.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test testnet demo lint bench clean

TESTNET_DIR ?= .testnet

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# A fresh 4-validator testnet in $(TESTNET_DIR), one OS process per node, until Ctrl-C.
testnet: $(STAMP)
	$(BIN)/oml-node testnet init --validators 4 --out $(TESTNET_DIR) --force
	$(BIN)/oml-node testnet start $(TESTNET_DIR)

# The whole OML story on 5 local node processes, narrated; checks every balance change.
demo: $(STAMP)
	$(BIN)/oml-node demo

lint: $(STAMP)
	$(BIN)/ruff check node consensus oml net tests bench

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
