"""Start-up structure: what `newsletter` imports before and while a command runs.

No timings here (machines are noisy; bench/startup.py measures): these tests guard the
structure that keeps start-up short. The command modules import their services when the
command runs, the database layer is loaded only by commands that use it, and Alembic only
when a migration is due.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from newsletter.infra.db.engine import alembic_head_revision, head_revision

HEAVY = {
    "sqlalchemy",
    "alembic",
    "jinja2",
    "mjml",
    "pydantic_settings",
    "sendgrid",
    "starlette",
    "uvicorn",
    "apscheduler",
    "email_validator",
}
DATABASE = {"sqlalchemy", "alembic", "psycopg", "starlette", "uvicorn", "apscheduler", "sendgrid"}
FEED = {"feedgen", "lxml", "dateutil"}  # only `archive build` writes the Atom feed

# Runs a command in-process, then prints the top-level packages it had imported.
RUN_AND_LIST = """
import json, sys
from newsletter.cli import run
code = run(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def python(code: str, *args: str, cwd: os.PathLike[str] | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    if cwd is not None:
        env["NEWSLETTER_WORKSPACE"] = str(cwd)
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=True,
    )
    return done.stdout


def run_fresh(*args: str, cwd: os.PathLike[str]) -> tuple[int, set[str]]:
    """Run `newsletter ARGS` in a new interpreter; its exit status and imported packages."""
    result = json.loads(python(RUN_AND_LIST, *args, cwd=cwd).splitlines()[-1])
    return result["code"], set(result["modules"])


def test_importing_the_cli_loads_no_service_library():
    shown = python(
        "import newsletter.cli; import sys; print(sorted(m for m in sys.modules "
        f"if m.split('.')[0] in {sorted(HEAVY)!r}))"
    )
    assert shown.strip() == "[]"


def test_help_of_every_command_loads_no_service_library(sample):
    code, modules = run_fresh("--help", cwd=sample.root)
    assert code == 0
    assert modules & HEAVY == set()
    code, modules = run_fresh("send", "--help", cwd=sample.root)
    assert code == 0
    assert modules & HEAVY == set()


def test_check_and_build_do_without_the_database_layer_and_the_feed(sample, tmp_path):
    code, modules = run_fresh("check", "2026-12-welcome", cwd=sample.root)
    assert code == 0
    assert modules & (DATABASE | FEED) == set()
    code, modules = run_fresh("build", "2026-12-welcome", "--out", str(tmp_path), cwd=sample.root)
    assert code == 0
    assert modules & (DATABASE | FEED) == set()


def test_alembic_is_loaded_only_when_a_migration_is_due(sample):
    code, modules = run_fresh("subscribers", "count", cwd=sample.root)  # a new database
    assert code == 0
    assert "alembic" in modules
    code, modules = run_fresh("subscribers", "count", cwd=sample.root)  # now current
    assert code == 0
    assert "sqlalchemy" in modules
    assert "alembic" not in modules


def test_head_revision_read_from_the_files_is_alembics():
    assert head_revision() == alembic_head_revision()
