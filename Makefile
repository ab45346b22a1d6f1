# The two commands a fresh machine needs (see README): `make farm` runs the farm, `make test` tests it.
# Everything else is installed by these targets: the virtualenv from PyPI, Debian packages with apt-get.

PYTHON ?= python3.11
# Where `make farm` serves the index.
PORT ?= 8080
VENV ?= .venv
BIN := $(VENV)/bin
# Tests and the farm run the venv's commands (wheelfarm, twine, uv) by name.
export PATH := $(abspath $(BIN)):$(PATH)
# Debian packages the test suite needs beyond what wheelfarm installs for itself on first use.
TEST_DEBS := $(shell sed -e 's/\#.*//' tests/debian-packages.txt)

.PHONY: install test lint farm serve clean-venv

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

test-debs:
	@missing=$$(for p in $(TEST_DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for the tests: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: install test-debs lint
	$(BIN)/pytest

serve: install
	$(BIN)/wheelfarm serve

clean-venv:
	rm -rf $(VENV)

# The main job: the nightly loop over recipes/ on the embedded defaults (local index, SQLite ledger),
# then keep serving the index with what it built.
farm: install
	$(BIN)/wheelfarm nightly --serve --port $(PORT)
