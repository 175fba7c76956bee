# Two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run serve test lint bench venv migrate clean messages

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found; set PYTHON=python3.11"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.installed

## make run: development stack with demo data and chains streaming blocks (SQLite, in-memory layer).
run: venv
	@mkdir -p var
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py migrate --noinput
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py run_stack --demo --port $(PORT)

## make serve: the same processes without demo data; honours PORT, DATABASE_URL, REDIS_URL.
serve: venv
	@mkdir -p var
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py run_stack --port $(PORT)

test: venv
	@mkdir -p var
	DJANGO_DEBUG=1 $(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	DJANGO_DEBUG=1 $(VENV)/bin/mypy gm businesschain supervision reporting config

bench: venv
	DJANGO_DEBUG=1 $(PY) benchmarks/gm_bench.py
	@for b in ingest_bench supervision_bench analytics_bench realtime_bench; do \
	  if [ -f benchmarks/$$b.py ]; then DJANGO_DEBUG=1 $(PY) benchmarks/$$b.py || exit 1; fi; done

messages: venv
	cd config && ../$(PY) ../manage.py compilemessages --ignore=.venv

clean:
	rm -rf var/db.sqlite3* var/staticfiles
