# The two commands of the README. Both work on a fresh machine: they create a
# virtual environment in .venv, install the project and what it needs, and run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo-data

.PHONY: demo test system-deps clean

$(BIN)/mr: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# Command-line tools the tests and benchmarks compare against (xz, lz4).
system-deps:
	@command -v xz >/dev/null && command -v lz4 >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq --no-install-recommends xz-utils lz4; }

demo: $(BIN)/mr system-deps
	rm -rf $(DEMO_DIR)
	$(BIN)/python bench/storage_bench.py --pings 2000 --data-dir $(DEMO_DIR)
	$(BIN)/mr ls --data-dir $(DEMO_DIR) --partitions
	$(BIN)/mr cat $$(find $(DEMO_DIR) -name '*.lzma' | sort | head -1) | head -2 | cut -c1-160

test: $(BIN)/mr system-deps
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(DEMO_DIR) build *.egg-info
