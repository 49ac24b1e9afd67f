# motifcat: `make demo` runs the main job on the embedded catalog, `make test` runs the tests.
# Both set up everything they need on a fresh machine (venv, packages, Node parser, Chromium).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CYPHER_DIR := tests/cypher

.PHONY: venv demo test test-neo4j lint bench app clean node-deps browser-deps bench-venv bench-data bench-real

venv: $(STAMP)

$(STAMP): pyproject.toml
	@# Debian splits venv out of python3: install it where we can (CI runs as root).
	@$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; } || true
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Neo4j's own Cypher parser, run offline under Node to validate every statement of the Neo4j backend.
node-deps: $(CYPHER_DIR)/node_modules/.stamp

$(CYPHER_DIR)/node_modules/.stamp: $(CYPHER_DIR)/package.json $(CYPHER_DIR)/package-lock.json
	@# Node/npm from Debian where missing; without them the parser tests skip and say why.
	@command -v npm >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; } \
	  || echo "node-deps: no npm; the Cypher parser tests will be skipped"
	if command -v npm >/dev/null; then cd $(CYPHER_DIR) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.stamp; fi

# Debian's Chromium for the real-browser test (no browser download); skipped where apt is absent.
browser-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	      || echo "browser-deps: could not install chromium; the browser test will be skipped"; \
	  else echo "browser-deps: no apt/root; the browser test will be skipped"; fi; \
	fi

lint: venv
	$(VENV)/bin/ruff check motifcat tests bench conftest.py

demo: venv
	$(VENV)/bin/motifcat demo

# pytest runs tests/ and every docstring Example of motifcat/ (--doctest-modules, pyproject.toml).
test: venv node-deps browser-deps
	$(VENV)/bin/ruff check motifcat tests bench conftest.py
	$(PY) -m pytest -q

test-neo4j: venv
	@command -v docker >/dev/null && docker info >/dev/null 2>&1 || { echo "test-neo4j needs a running Docker engine"; exit 1; }
	test -f .env || cp .env.example .env
	docker compose up -d --wait neo4j
	set -a; . ./.env; set +a; \
	MOTIFCAT_TEST_NEO4J_URI=bolt://localhost:7687 NEO4J_USER=$${NEO4J_USER:-neo4j} NEO4J_PASSWORD=$${NEO4J_PASSWORD} \
	  $(PY) -m pytest -q -m neo4j

bench: venv
	@# bench/_*.py are helpers and bench/simulate_*.py run in the benchmark venv (make bench-data).
	for b in bench/*.py; do case $$(basename $$b) in _*|simulate_*) continue;; esac; $(PY) $$b || exit 1; done

# Benchmark venv: reference packages only (abTEM simulates the benchmark sets; Atomap and motif-learn
# are the peers measured side by side). Never dependencies of motifcat: Atomap is GPL.
BENCH_VENV := .bench-venv
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp
BENCH_PKGS := 'abtem>=1.0,<1.1' 'atomap==0.4.2' 'motif-learn==0.1.2'

bench-venv: $(BENCH_STAMP)

$(BENCH_STAMP):
	test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install -q --upgrade pip
	$(BENCH_PY) -m pip install -q $(BENCH_PKGS)
	$(BENCH_PY) -c "import abtem, atomap.api, hyperspy.api, mtflearn; print('bench-venv: abtem', abtem.__version__, '| mtflearn', mtflearn.__version__)"
	touch $(BENCH_STAMP)

# Rebuild every benchmark set (abTEM in the benchmark venv; the Cairo set uses motifcat's own
# generator in motifcat's venv). Slow (tens of minutes on 2 cores); the sets are committed, so
# nobody needs to run this. Not part of `make test`.
bench-data: bench-venv venv
	nice $(BENCH_PY) bench/simulate_tmd.py
	nice $(BENCH_PY) bench/simulate_perovskite.py --variant coarse
	nice $(BENCH_PY) bench/simulate_perovskite.py --variant fine
	PYTHONPATH=$(CURDIR) nice $(PY) bench/simulate_cairo.py

# Real experimental images shipped inside a public package (temul-toolkit 0.1.9, GPL-3.0: the
# Se-implanted MoS2 HAADF image of its example data), fetched by package name into
# bench/data/real/ (git-ignored). Never fetched at run time or by the tests.
REAL_DIR := bench/data/real
REAL_PKG := temul-toolkit==0.1.9
bench-real: bench-venv
	mkdir -p $(BENCH_VENV)/cache $(REAL_DIR)
	$(BENCH_PY) -m pip download -q --no-deps $(REAL_PKG) -d $(BENCH_VENV)/cache
	$(BENCH_PY) bench/_real_extract.py $(BENCH_VENV)/cache $(REAL_DIR)

app: venv
	$(VENV)/bin/motifcat app

clean:
	rm -rf $(VENV) $(BENCH_VENV) motifcat-catalog demo-out .pytest_cache $(CYPHER_DIR)/node_modules
