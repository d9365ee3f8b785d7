# Two commands do all the set-up on a fresh machine (Python 3.11 and make are all it needs):
#   make dev    - install into .venv, run `cityorder dev`: embedded broker, a worker, the demo day
#   make test   - install into .venv, lint, check the JSON Schemas, run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev demo test system-deps bench bench-runtime bench-ledger bench-console bench-adapters bench-webhooks bench-instructions schemas dashboards clean

# What pip cannot install, for the tests: a real PostgreSQL (the ledger), a real browser
# (Debian's chromium, driven by Playwright, with a CJK font so the console's screenshots show
# Chinese, not boxes), Prometheus and promtool (the metrics' lint, the rules' unit tests, the
# dashboards' queries), Alertmanager's amtool (its configuration) and mosquitto (the MQTT broker
# the Frigate adapter's tests read from). Installed with apt-get
# when missing (CI runs as root on Debian), saying so; never downloaded otherwise.
DEB_PACKAGES_CHECK = \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || echo postgresql; \
	command -v chromium >/dev/null 2>&1 || echo chromium; \
	dpkg -s fonts-noto-cjk >/dev/null 2>&1 || echo fonts-noto-cjk; \
	command -v promtool >/dev/null 2>&1 || echo prometheus; \
	command -v amtool >/dev/null 2>&1 || echo prometheus-alertmanager; \
	[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || echo mosquitto

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/cityorder dev

demo: $(STAMP)
	$(BIN)/cityorder demo

system-deps:
	@missing="$$( $(DEB_PACKAGES_CHECK) )"; missing="$$(echo $$missing)"; \
	if [ -n "$$missing" ]; then \
	  echo "make: installing Debian packages this needs: $$missing (apt-get)"; \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  else \
	    echo "make: run as root, or: sudo apt-get install $$missing" >&2; exit 1; \
	  fi; \
	fi

# The suite in two processes, each test file whole in one of them (a file's broker or database
# fixture is started once): about half the wall time, since most of an end-to-end test is
# waiting. PYTEST_PARALLEL= runs it in one.
PYTEST_PARALLEL ?= -n 2 --dist loadfile

test: $(STAMP) system-deps
	$(BIN)/ruff check .
	$(BIN)/python -m models.schema --check
	$(BIN)/pytest $(PYTEST_PARALLEL)

bench: $(STAMP)
	$(BIN)/python -m bench.engine_bench

# The peer in the runtime benchmark (quixstreams pins pydantic below ours): a venv of its own.
PEER := .venv-peer
$(PEER)/.installed:
	@echo "runtime benchmark: making $(PEER) for the quixstreams peer (bench/quix_peer.py)"
	$(PYTHON) -m venv $(PEER)
	$(PEER)/bin/pip install --quiet quixstreams==3.28.1
	touch $(PEER)/.installed

bench-runtime: $(STAMP) $(PEER)/.installed
	$(BIN)/python -m bench.runtime_bench

bench-ledger: $(STAMP) system-deps
	$(BIN)/python -m bench.ledger_bench

bench-console: $(STAMP) system-deps
	$(BIN)/python -m bench.console_bench

bench-adapters: $(STAMP)
	$(BIN)/python -m bench.adapters_bench

bench-webhooks: $(STAMP)
	$(BIN)/python -m bench.webhooks_bench --cpu 0

# Counted by valgrind, which this target alone needs: installed as the tests' packages are.
bench-instructions: $(STAMP)
	@command -v valgrind >/dev/null 2>&1 || $(MAKE) --no-print-directory system-deps DEB_PACKAGES_CHECK='echo valgrind'
	$(BIN)/python -m bench.instructions

schemas: $(STAMP)
	$(BIN)/python -m models.schema

# The Grafana dashboards are generated (docs/monitoring.md): edit deploy/grafana/build.py, then this.
dashboards:
	$(PYTHON) deploy/grafana/build.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .hypothesis
