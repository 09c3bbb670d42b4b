"""CSV import on SQLite and PostgreSQL: formats, validation, duplicates, suppression, atomicity."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from newsletter.domain.subscriber import Source, Status
from newsletter.errors import InputError
from newsletter.services.importer import CHUNK, import_csv
from newsletter.services.subscribers import Context

CLI = Context(Source.CLI)


def write(tmp_path, content: str | bytes, name: str = "list.csv"):
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def test_bom_crlf_quotes_and_header_variants(engine, store, tmp_path):
    path = write(
        tmp_path,
        "\ufeffEmail Address,First_Name,Last Name,Tags,Company,Note\r\n"
        'ada@example.com,Ada,Lovelace,"evidence, safety","Analytical Engines, Ltd",'
        '"line one\r\nline two"\r\n'
        "bob@example.org,Bob,,,,\r\n",
    )
    report = import_csv(engine, path)
    assert (report.rows, report.added, report.invalid) == (2, 2, 0)
    ada = store.get("ada@example.com")
    assert ada.name == "Ada Lovelace"
    assert ada.topics == ["evidence", "safety"]
    assert ada.attributes == {"Company": "Analytical Engines, Ltd", "Note": "line one\r\nline two"}
    assert ada.status == Status.ACTIVE
    assert store.get("bob@example.org").name == "Bob"


def test_name_and_topics_columns(engine, store, tmp_path):
    path = write(tmp_path, "e-mail,name,topics\ncy@example.net,Cy Young,basics|evidence\n")
    import_csv(engine, path, status=Status.PENDING)
    cy = store.get("cy@example.net")
    assert (cy.name, cy.topics, cy.status) == ("Cy Young", ["basics", "evidence"], "pending")


def test_invalid_rows_are_reported_with_row_and_line(engine, tmp_path):
    path = write(
        tmp_path,
        'email,name\nok@example.com,A\nnot-an-address,B\n"multi\nline@example.com",C\n'
        "x@localhost,D\n",
    )
    report = import_csv(engine, path)
    assert (report.added, report.invalid) == (1, 3)
    assert [(p.row, p.line) for p in report.problems] == [(3, 3), (4, 4), (5, 6)]
    assert "invalid address" in report.problems[0].reason


def test_internationalized_addresses_are_normalized(engine, store, tmp_path):
    path = write(tmp_path, "email\nJosé@Bücher.DE\nx@xn--bcher-kva.de\n")
    report = import_csv(engine, path)
    assert report.added == 2
    assert store.get("josé@bücher.de").email == "José@bücher.de"
    assert store.get("x@bücher.de").email == "x@bücher.de"


def test_duplicates_within_file_and_against_database(engine, store, tmp_path):
    store.add("known@example.com", name="Known", context=CLI)
    rows = ["email,name", "new@example.com,One", "NEW@example.com,Two", "Known@Example.com,"]
    # A duplicate far apart, in another chunk of the stream.
    rows += [f"filler{i}@example.com," for i in range(CHUNK + 5)] + ["new@EXAMPLE.com,Three"]
    report = import_csv(engine, write(tmp_path, "\n".join(rows) + "\n"))
    assert report.added == CHUNK + 6
    assert report.unchanged == 1
    assert report.skipped == 2
    assert report.skipped_reasons == {"duplicate of an earlier row": 2}
    assert store.get("new@example.com").name == "One"


def test_updates_merge_topics_and_attributes(engine, store, tmp_path):
    store.add("a@example.com", topics=["safety"], context=CLI)
    report = import_csv(
        engine, write(tmp_path, "email,name,topics,city\na@example.com,A B,evidence,Leeds\n")
    )
    assert report.updated == 1
    record = store.get("a@example.com")
    assert (record.name, record.topics, record.attributes) == (
        "A B",
        ["evidence", "safety"],
        {"city": "Leeds"},
    )


@pytest.mark.parametrize("status", [Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED])
def test_never_reactivates_suppressed_addresses(engine, store, tmp_path, status):
    record = store.add("gone@example.com", context=CLI)
    store.change_status(record.id, status, CLI)
    report = import_csv(engine, write(tmp_path, "email\ngone@example.com\n"))
    assert report.skipped == 1
    assert store.get("gone@example.com").status == status
    assert len(store.events(record.id)) == 2


def test_never_brings_back_an_erased_address(engine, store, tmp_path):
    store.add("erased@example.com", context=CLI)
    store.erase("erased@example.com", CLI)
    report = import_csv(engine, write(tmp_path, "email\nERASED@example.com\n"))
    assert report.skipped_reasons == {"erased address (suppressed)": 1}
    assert store.find("erased@example.com") is None


def test_status_column_opt_outs_are_honoured(engine, store, tmp_path):
    store.add("was-active@example.com", context=CLI)
    path = write(
        tmp_path,
        "email,status\nwas-active@example.com,unsubscribed\n"
        "new-out@example.com,unsubscribed\nnew-in@example.com,active\n",
    )
    import_csv(engine, path)
    assert store.get("was-active@example.com").status == Status.UNSUBSCRIBED
    assert store.get("new-out@example.com").status == Status.UNSUBSCRIBED
    assert store.get("new-in@example.com").status == Status.ACTIVE


def test_pending_becomes_active_with_an_event(engine, store, tmp_path):
    record = store.add("p@example.com", status=Status.PENDING, context=CLI)
    import_csv(engine, write(tmp_path, "email\np@example.com\n"))
    assert store.get("p@example.com").status == Status.ACTIVE
    last = store.events(record.id)[-1]
    assert (last.old_status, last.new_status, last.source) == ("pending", "active", "import")


def test_dry_run_reports_but_changes_nothing(engine, store, tmp_path):
    report = import_csv(
        engine, write(tmp_path, "email\na@example.com\nb@example.com\n"), dry_run=True
    )
    assert report.added == 2 and report.dry_run
    assert store.count()["active"] == 0


def test_bad_utf8_mid_file_leaves_database_untouched(engine, store, tmp_path):
    store.add("before@example.com", context=CLI)
    good = "".join(f"p{i}@example.com\n" for i in range(CHUNK * 2))
    path = write(tmp_path, b"email\n" + good.encode() + b"caf\xe9@example.com\n")
    with pytest.raises(InputError) as caught:
        import_csv(engine, path)
    assert caught.value.line == CHUNK * 2 + 2
    assert "not valid UTF-8" in caught.value.message
    assert store.count()["active"] == 1


def test_database_error_mid_file_rolls_everything_back(engine, store, tmp_path):
    """A real trigger makes the database refuse one row, after earlier chunks went in."""
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.execute(
                text(
                    "CREATE TRIGGER boom BEFORE INSERT ON subscribers "
                    "WHEN NEW.email_key = 'boom@example.com' BEGIN SELECT RAISE(ABORT, 'boom'); END"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN "
                    "IF NEW.email_key = 'boom@example.com' THEN RAISE EXCEPTION 'boom'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER boom BEFORE INSERT ON subscribers FOR EACH ROW "
                    "EXECUTE FUNCTION boom()"
                )
            )
    rows = "".join(f"p{i}@example.com\n" for i in range(CHUNK * 2)) + "boom@example.com\n"
    with pytest.raises(Exception, match="boom"):
        import_csv(engine, write(tmp_path, "email\n" + rows))
    assert store.count()["active"] == 0
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM imports")).scalar() == 0


def test_missing_email_column_and_empty_file(engine, tmp_path):
    with pytest.raises(InputError) as caught:
        import_csv(engine, write(tmp_path, "name,city\nA,B\n"))
    assert (caught.value.line, caught.value.message) == (
        1,
        "no email column in the header (columns: name, city)",
    )
    with pytest.raises(InputError, match="empty"):
        import_csv(engine, write(tmp_path, "", "empty.csv"))


def test_import_cli_json_report_and_errors(cli, sample, tmp_path):
    path = write(tmp_path, "email,name\nz@example.com,Zed\nbad,\n")
    result = cli("subscribers", "import", str(path), "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert (report["added"], report["invalid"]) == (1, 1)
    assert report["problems"][0]["row"] == 3
    missing = cli("subscribers", "import", str(tmp_path / "nope.csv"))
    assert missing.code == 2 and "nope.csv" in missing.err
    no_email = cli("subscribers", "import", str(write(tmp_path, "name\nx\n", "n.csv")))
    assert no_email.code == 2 and "n.csv:1: no email column" in no_email.err


def test_sample_list_imports_cleanly(cli, sample):
    import shutil

    from conftest import REPO

    shutil.copytree(REPO / "subscribers", sample.root / "subscribers")
    result = cli("subscribers", "import", "subscribers/sample.csv", "--json")
    report = json.loads(result.out)
    assert report["added"] >= 24 and report["invalid"] == 0 and report["skipped"] == 0
