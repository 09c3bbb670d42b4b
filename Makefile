# Two commands for a newcomer: `make demo` and `make test`. Each installs into the active
# virtual environment, or creates .venv/ when none is active.

ifdef VIRTUAL_ENV
PYTHON := python
STAMP := $(VIRTUAL_ENV)/.newsletter-installed
else
PYTHON := .venv/bin/python
STAMP := .venv/.newsletter-installed
endif

DEMO_ISSUE := 2026-12-welcome

.PHONY: install demo test lint format bench

install: $(STAMP)

$(STAMP): pyproject.toml
	@if [ -z "$$VIRTUAL_ENV" ] && [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	@touch $@

demo: $(STAMP)
	$(PYTHON) -m newsletter subscribers import subscribers/sample.csv
	$(PYTHON) -m newsletter subscribers count
	$(PYTHON) -m newsletter check $(DEMO_ISSUE)
	$(PYTHON) -m newsletter build $(DEMO_ISSUE)
	$(PYTHON) -m newsletter preview $(DEMO_ISSUE)
	$(PYTHON) -m newsletter send $(DEMO_ISSUE) --yes --if-unsent
	@echo "Messages written to $$($(PYTHON) -c 'from newsletter.infra.workspace import open_workspace; print(open_workspace().state_dir / "outbox")')/send-*/"

test: $(STAMP)
	$(PYTHON) -m pytest
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

lint: $(STAMP)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format: $(STAMP)
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

bench: $(STAMP)
	$(PYTHON) bench/render.py
	$(PYTHON) bench/import.py
	$(PYTHON) bench/send.py
