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
# The demo's links point at a `serve` on this machine, so they can be clicked.
DEMO_BASE_URL := http://127.0.0.1:8000

.PHONY: install demo test lint format bench

install: $(STAMP)

$(STAMP): pyproject.toml
	@if [ -z "$$VIRTUAL_ENV" ] && [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	@touch $@

demo: export NEWSLETTER_BASE_URL = $(DEMO_BASE_URL)
demo: $(STAMP)
	$(PYTHON) -m newsletter subscribers import subscribers/sample.csv
	$(PYTHON) -m newsletter subscribers count
	$(PYTHON) -m newsletter check $(DEMO_ISSUE)
	$(PYTHON) -m newsletter build $(DEMO_ISSUE)
	$(PYTHON) -m newsletter preview $(DEMO_ISSUE)
	$(PYTHON) -m newsletter send $(DEMO_ISSUE) --yes --if-unsent
	@echo "Messages written to $$($(PYTHON) -c 'from newsletter.infra.workspace import open_workspace; print(open_workspace().state_dir / "outbox")')/send-*/"
	@echo ""
	@echo "Next, click through it on this machine. Start the web app (it uses the demo's key):"
	@echo "  NEWSLETTER_BASE_URL=$(DEMO_BASE_URL) $(PYTHON) -m newsletter serve"
	@echo "then open a reader's unsubscribe link, the archive or the subscribe page:"
	@echo "  $$(grep -ho '$(DEMO_BASE_URL)/u/[A-Za-z0-9_-]*' .state/outbox/send-*/*.eml 2>/dev/null | head -n 1)"
	@echo "  $(DEMO_BASE_URL)/archive/    $(DEMO_BASE_URL)/subscribe"

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
