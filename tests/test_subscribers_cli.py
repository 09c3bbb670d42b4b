"""Subscriber commands end to end, and the newcomer's path: import, list, one-click, show."""

from __future__ import annotations

import csv
import io
import json
import shutil

import httpx
from conftest import REPO, SECRET, running

from newsletter.domain.tokens import Purpose, Signer
from newsletter.infra.db.engine import connect, head_revision
from newsletter.infra.workspace import open_workspace
from newsletter.web.server import build_app


def test_newcomer_path_import_list_one_click_show(cli, sample, monkeypatch):
    shutil.copytree(REPO / "subscribers", sample.root / "subscribers")
    assert cli("subscribers", "import", "subscribers/sample.csv").code == 0
    listed = json.loads(cli("subscribers", "list", "--json", "--limit", "1000").out)
    assert len(listed) == 36
    person = listed[0]
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    workspace = open_workspace(sample.root)
    token = Signer([SECRET]).sign(Purpose.UNSUBSCRIBE, person["id"])
    with (
        connect(workspace.database_url) as engine,
        running(build_app(workspace, engine, Signer([SECRET]))) as url,
    ):
        response = httpx.post(
            f"{url}/u/{token}",
            content="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 200
    shown = cli("subscribers", "show", person["email"])
    assert shown.code == 0
    assert "active -> unsubscribed" in shown.out
    assert "one-click" in shown.out
    record = json.loads(cli("subscribers", "show", person["email"], "--json").out)
    assert [e["source"] for e in record["events"]] == ["import", "one-click"]
    assert json.loads(cli("subscribers", "count", "--json").out)["unsubscribed"] == 1


def test_add_show_unsubscribe_resubscribe_erase(cli):
    assert (
        cli("subscribers", "add", "Ann@Example.com", "--name", "Ann", "--topic", "evidence").code
        == 0
    )
    again = cli("subscribers", "add", "ann@example.com")
    assert again.code == 2 and "already on the list" in again.err
    assert cli("subscribers", "unsubscribe", "ann@example.com").code == 0
    missing_reason = cli("subscribers", "resubscribe", "ann@example.com")
    assert missing_reason.code == 2
    assert cli("subscribers", "resubscribe", "ann@example.com", "--reason", "phoned").code == 0
    shown = json.loads(cli("subscribers", "show", "ann@example.com", "--json").out)
    assert shown["status"] == "active"
    assert [e["new_status"] for e in shown["events"]] == ["active", "unsubscribed", "active"]
    assert cli("subscribers", "erase", "ann@example.com", "--yes").code == 0
    gone = cli("subscribers", "show", "ann@example.com")
    assert gone.code == 2 and "no subscriber" in gone.err
    blocked = cli("subscribers", "add", "ANN@example.com")
    assert blocked.code == 2 and "erased" in blocked.err


def test_unknown_subscriber_and_bad_address_exit_2(cli):
    assert cli("subscribers", "show", "nobody@example.com").code == 2
    bad = cli("subscribers", "add", "not an address")
    assert bad.code == 2 and "invalid email address" in bad.err


def test_export_streams_csv_and_round_trips(cli, sample, tmp_path):
    for i in range(3):
        cli("subscribers", "add", f"p{i}@example.com", "--topic", "safety")
    cli("subscribers", "unsubscribe", "p1@example.com")
    exported = cli("subscribers", "export", "--status", "active")
    rows = list(csv.DictReader(io.StringIO(exported.out)))
    assert [r["email"] for r in rows] == ["p0@example.com", "p2@example.com"]
    assert rows[0]["topics"] == "safety"
    target = tmp_path / "all.csv"
    assert cli("subscribers", "export", str(target)).code == 0
    everyone = list(csv.DictReader(target.open(encoding="utf-8")))
    assert {r["status"] for r in everyone} == {"active", "unsubscribed"}
    # Importing the export elsewhere keeps the opt-out.
    other = tmp_path / "other"
    shutil.copytree(sample.root, other, ignore=shutil.ignore_patterns(".state"))
    assert cli("--workspace", str(other), "subscribers", "import", str(target)).code == 0


def test_list_pages_and_filters(cli):
    for i in range(5):
        cli("subscribers", "add", f"p{i}@example.com", *(["--topic", "evidence"] if i % 2 else []))
    first = json.loads(cli("subscribers", "list", "--limit", "2", "--json").out)
    second = json.loads(cli("subscribers", "list", "--limit", "2", "--page", "2", "--json").out)
    assert [r["email"] for r in first + second] == [f"p{i}@example.com" for i in range(4)]
    evidence = json.loads(cli("subscribers", "list", "--topic", "evidence", "--json").out)
    assert [r["email"] for r in evidence] == ["p1@example.com", "p3@example.com"]
    table = cli("subscribers", "list", "--limit", "2")
    assert "next: --page 2" in table.out


def test_serve_refuses_without_a_signing_key(cli, monkeypatch):
    monkeypatch.delenv("NEWSLETTER_SECRET_KEY", raising=False)
    result = cli("serve")
    assert result.code == 2
    assert "NEWSLETTER_SECRET_KEY is not set" in result.err


def test_db_upgrade(cli):
    result = cli("db", "upgrade")
    assert result.code == 0 and f"schema at {head_revision()}" in result.out


def test_export_to_an_unwritable_place_is_an_input_error(cli, tmp_path):
    cli("subscribers", "add", "p@example.com")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = cli("subscribers", "export", str(blocker / "out.csv"))
    assert result.code == 2 and "cannot write" in result.err
    assert not list(tmp_path.glob(".out.csv.*"))


def test_topics_are_shown_by_their_labels_and_kept_as_tags_in_json(cli):
    assert cli("subscribers", "add", "ada@example.com", "--topic", "evidence").code == 0
    assert "The evidence" in cli("subscribers", "show", "ada@example.com").out
    assert "The evidence" in cli("subscribers", "list").out
    assert json.loads(cli("subscribers", "list", "--json").out)[0]["topics"] == ["evidence"]
