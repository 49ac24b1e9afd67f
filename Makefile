# motifcat: `make demo` runs the main job on the embedded catalog, `make test` runs the tests.
# Both set up everything they need on a fresh machine (venv, packages, Node parser, Chromium).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CYPHER_DIR := tests/cypher

.PHONY: venv demo test test-neo4j lint bench app clean node-deps browser-deps

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
	for b in bench/*.py; do $(PY) $$b || exit 1; done

app: venv
	$(VENV)/bin/motifcat app

clean:
	rm -rf $(VENV) motifcat-catalog demo-out .pytest_cache $(CYPHER_DIR)/node_modules
