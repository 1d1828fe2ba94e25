# The two commands of the README. Both work on a fresh machine: they create a
# virtual environment in .venv, install the project and what it needs, and run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo-data

EXTENSION := mapreduce/_histsum$(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")

.PHONY: demo test system-deps clean

$(BIN)/mr: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The C extension, rebuilt in place when its source changes (the editable install above builds it the first
# time). Without a compiler this warns and builds nothing, and the Python twin is used.
$(EXTENSION): mapreduce/_histsum.c | $(BIN)/mr
	$(BIN)/python setup.py --quiet build_ext --inplace

# Command-line tools the tests and benchmarks compare against (xz, lz4), and the
# sshd and ssh client the cluster tests run a real cluster through.
system-deps:
	@command -v xz >/dev/null && command -v lz4 >/dev/null && test -x /usr/sbin/sshd && command -v ssh >/dev/null \
	  && command -v pgrep >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      xz-utils lz4 openssh-server openssh-client procps; }

# The main job: the dashboards' histogram aggregation over freshly generated sample data.
demo: $(BIN)/mr
	rm -rf $(DEMO_DIR)
	$(BIN)/mr gen $(DEMO_DIR)/data --pings 2000
	$(BIN)/mr run jobs/histogram_aggregation.py --data-dir $(DEMO_DIR)/data --output $(DEMO_DIR)/aggregates.jsonl
	$(BIN)/python bin/summarize-aggregates $(DEMO_DIR)/aggregates.jsonl

test: $(BIN)/mr $(EXTENSION) system-deps
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(DEMO_DIR) build *.egg-info
