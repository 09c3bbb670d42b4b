"""`issues new --from-library`: a draft of never-sent, freshly reviewed snippets grouped
into sections by tag, with the reasons for every pick and skip; on SQLite and PostgreSQL
for the part that reads the ledger."""

from __future__ import annotations

import json
from datetime import date

import pytest

from newsletter.domain.drafting import Candidate, LastSent, SkipReason, choose, group
from newsletter.domain.issue import parse_issue
from newsletter.domain.scaffold import issue_text_with_sections
from newsletter.errors import InputError
from newsletter.services.build import Builder
from newsletter.services.drafting import draft_from_library, split_tags
from newsletter.services.library import Library

DAY = date(2027, 2, 4)
WELCOME = "2026-12-welcome"  # how-microneedling-works, blood-flow-and-follicles,
# collagen-and-elastin, what-a-consultation-covers, realistic-expectations


# -- choosing and grouping (pure) ---------------------------------------------------------


def candidate(sid, reviewed, *tags, sent=None):
    return Candidate(sid, sid.title(), tuple(tags), date.fromisoformat(reviewed), sent)


def test_choose_takes_unsent_fresh_snippets_freshest_first_and_says_why():
    earlier = LastSent(3, "2027-01-evidence", date(2027, 1, 7))
    choice = choose(
        [
            candidate("old", "2025-01-10", "evidence"),
            candidate("sent", "2027-01-01", "evidence", sent=earlier),
            candidate("b", "2026-12-02", "safety"),
            candidate("a", "2026-12-02", "evidence"),
            candidate("c", "2026-11-20", "evidence"),
            candidate("d", "2026-10-01", "basics"),
        ],
        day=DAY,
        max_age_days=365,
        count=3,
    )
    assert [p.id for p in choice.picked] == ["a", "b", "c"]
    assert choice.picked[0].reason == "never sent; reviewed 2026-12-02"
    assert [(s.id, s.kind) for s in choice.skipped] == [
        ("sent", SkipReason.SENT),
        ("old", SkipReason.STALE),
        ("d", SkipReason.COUNT),
    ]
    reasons = {s.id: s.reason for s in choice.skipped}
    assert reasons["sent"] == "already sent: send #3 (2027-01-evidence) on 2027-01-07"
    assert reasons["old"] == "stale: reviewed 2025-01-10, 755 days before 2027-02-04 (limit 365)"
    assert "--count 3" in reasons["d"]


def test_staleness_is_judged_on_the_issue_date():
    snippets = [candidate("x", "2026-01-01", "evidence")]
    assert choose(snippets, day=date(2026, 12, 31), max_age_days=365, count=5).picked
    late = choose(snippets, day=date(2027, 1, 2), max_age_days=365, count=5)
    assert not late.picked and late.skipped[0].kind == SkipReason.STALE


def test_tags_filter_and_name_the_section():
    snippets = [
        candidate("a", "2026-12-01", "mechanism", "evidence"),
        candidate("b", "2026-12-02", "safety"),
        candidate("c", "2026-12-03", "basics"),
        candidate("d", "2026-11-03"),
    ]
    choice = choose(snippets, day=DAY, max_age_days=365, count=5, tags=["evidence", "safety"])
    assert [(p.id, p.tag) for p in choice.picked] == [("b", "safety"), ("a", "evidence")]
    assert [(s.id, s.kind) for s in choice.skipped] == [
        ("c", SkipReason.TAG),
        ("d", SkipReason.TAG),
    ]
    assert choice.skipped[0].reason == "tag filtered: not tagged evidence or safety (basics)"
    sections = group(choice.picked, str.upper, ["evidence", "safety"])
    assert [(s.title, s.snippet_ids) for s in sections] == [
        ("EVIDENCE", ("a",)),
        ("SAFETY", ("b",)),
    ]

    unfiltered = choose(snippets, day=DAY, max_age_days=365, count=5)
    sections = group(unfiltered.picked, str.upper)
    assert [(s.title, s.snippet_ids) for s in sections] == [
        ("BASICS", ("c",)),
        ("SAFETY", ("b",)),
        ("MECHANISM", ("a",)),  # its first tag
        ("More", ("d",)),  # untagged, last
    ]


def test_the_sections_text_parses_as_an_issue():
    text = issue_text_with_sections(
        'TK: a "quoted" subject', [("The evidence", ["a", "b"]), ("Safety", ["c"])], DAY
    )
    issue = parse_issue("x", text, "x.md")
    assert issue.meta.status == "draft" and issue.meta.date == DAY
    assert issue.meta.snippets == ["a", "b", "c"]
    assert [s.title for s in issue.meta.layout.sections] == ["The evidence", "Safety"]
    assert "TK" in issue.intro


def test_split_tags():
    assert split_tags(["evidence, safety", "safety", "basics"]) == ["evidence", "safety", "basics"]


# -- the service, with the ledger -----------------------------------------------------------


def send_welcome(sending) -> int:
    sending.add(3)
    return sending.run("outbox", issue=WELCOME, batch_size=50)[1].id


def make_stale(sending, snippet_id: str) -> None:
    path = f"issues/snippets/{snippet_id}.md"
    text = (sending.sample.root / path).read_text(encoding="utf-8")
    reviewed = next(line for line in text.splitlines() if line.startswith("reviewed:"))
    sending.sample.edit(path, reviewed, "reviewed: 2025-06-01")


def draft(sending, slug="2027-02-draft", **options):
    options.setdefault("day", DAY)
    return draft_from_library(sending.workspace, sending.engine, slug, **options)


def test_a_draft_takes_unsent_fresh_snippets_grouped_by_topic(sending):
    send_id = send_welcome(sending)
    make_stale(sending, "sterile-technique-depth-and-frequency")
    drafted = draft(sending)

    assert [p.id for p in drafted.choice.picked] == [
        "compared-with-finasteride-and-minoxidil",  # reviewed 2026-12-02 ...
        "evidence-in-androgenetic-alopecia",
        "side-effects-and-aftercare",
        "who-should-avoid-microneedling",
        "better-absorption-of-topicals",  # ... then 2026-11-20
    ]
    assert [(s.title, s.snippet_ids) for s in drafted.sections] == [
        (
            "Other treatments",
            ("compared-with-finasteride-and-minoxidil", "better-absorption-of-topicals"),
        ),
        ("The evidence", ("evidence-in-androgenetic-alopecia",)),
        ("Safety", ("side-effects-and-aftercare", "who-should-avoid-microneedling")),
    ]
    kinds = {s.id: s.kind for s in drafted.choice.skipped}
    welcome = Library(sending.workspace).load_issue(WELCOME).meta.snippets
    assert {sid for sid, kind in kinds.items() if kind == SkipReason.SENT} == set(welcome)
    assert kinds["sterile-technique-depth-and-frequency"] == SkipReason.STALE
    assert kinds["home-rollers-vs-clinic-treatment"] == SkipReason.COUNT
    reasons = {s["id"]: s["reason"] for s in drafted.to_dict()["skipped"]}
    assert reasons["how-microneedling-works"].startswith(f"already sent: send #{send_id} ")
    assert "reviewed 2025-06-01" in reasons["sterile-technique-depth-and-frequency"]
    picked = drafted.to_dict()["picked"][0]
    assert picked["reason"] == "never sent; reviewed 2026-12-02"
    assert picked["section"] == "Other treatments"

    # The file: a draft in sections that the library reads, TK where the editor writes.
    assert drafted.created.path == sending.sample.root / "issues/2027-02-draft.md"
    issue = Library(sending.workspace).compose("2027-02-draft")
    assert issue.meta.status == "draft" and issue.meta.date == DAY
    assert [s.title for s in issue.sections] == ["Other treatments", "The evidence", "Safety"]
    assert [s.id for s in issue.snippets] == [p.id for p in sorted_by_section(drafted)]
    assert issue.source.intro.startswith("TK")
    findings = Builder(sending.workspace).build("2027-02-draft").findings
    assert any(f.severity == "error" and "'TK'" in f.message for f in findings)


def sorted_by_section(drafted):
    by_id = {p.id: p for p in drafted.choice.picked}
    return [by_id[sid] for s in drafted.sections for sid in s.snippet_ids]


def test_tags_and_count_narrow_the_draft(sending):
    send_welcome(sending)
    drafted = draft(sending, tags=["safety,evidence"], count=10)
    assert [(s.title, len(s.snippet_ids)) for s in drafted.sections] == [
        ("Safety", 4),
        ("The evidence", 2),
    ]
    skipped = {s.id: s.kind for s in drafted.choice.skipped}
    assert skipped["better-absorption-of-topicals"] == SkipReason.TAG
    assert "home-rollers-vs-clinic-treatment" in drafted.sections[0].snippet_ids

    two = draft(sending, "2027-03-draft", count=2)
    assert len(two.choice.picked) == 2
    assert all(p.reviewed == date(2026, 12, 2) for p in two.choice.picked)


def test_an_existing_file_is_never_overwritten(sending):
    draft(sending)
    path = sending.sample.root / "issues/2027-02-draft.md"
    before = path.read_text(encoding="utf-8")
    with pytest.raises(InputError, match="already exists; not overwritten"):
        draft(sending)
    with pytest.raises(InputError, match="already exists"):
        draft(sending, WELCOME)
    assert path.read_text(encoding="utf-8") == before


def test_nothing_to_pick_is_an_input_error_saying_why(sending):
    send_welcome(sending)
    with pytest.raises(InputError) as caught:
        draft(sending, tags=["expectations"])
    message = str(caught.value)
    assert message.startswith("nothing to draft from: none of the 12 snippet(s)")
    assert "1 already sent" in message and "11 without the wanted tags" in message
    assert not (sending.sample.root / "issues/2027-02-draft.md").exists()
    with pytest.raises(InputError) as late:
        draft(sending, day=date(2029, 1, 1))
    assert "5 already sent, 7 reviewed more than 365 days before 2029-01-01" in str(late.value)


def test_bad_arguments_are_input_errors(sending):
    with pytest.raises(InputError, match="did you mean evidence"):
        draft(sending, tags=["evidnce"])
    with pytest.raises(InputError, match="--count must be 1 or more"):
        draft(sending, count=0)
    with pytest.raises(InputError, match="lowercase letters"):
        draft(sending, "Bad Name")


def test_issues_new_from_library_prints_the_path_then_why(sending, cli):
    send_welcome(sending)
    result = cli(
        "issues",
        "new",
        "2027-02-cli",
        "--from-library",
        "--tags",
        "evidence,safety",
        "--count",
        "2",
        "--date",
        "2027-02-04",
    )
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "issues/2027-02-cli.md"
    assert sum(line.startswith("  + ") for line in lines) == 2
    assert any(line.startswith("  - ") and "tag" in line for line in lines)
    data = json.loads(
        cli("issues", "new", "2027-02-cli2", "--from-library", "--json", "--count", "1").out
    )
    assert data["path"] == "issues/2027-02-cli2.md" and len(data["picked"]) == 1
    both = cli("issues", "new", "2027-02-x", "--from-library", "--snippet", "a")
    assert both.code == 2 and "one way" in both.err
    loose = cli("issues", "new", "2027-02-y", "--tags", "evidence")
    assert loose.code == 2 and "--from-library" in loose.err
