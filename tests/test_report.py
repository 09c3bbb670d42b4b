"""`newsletter report`: one send's page, built from a known set of provider events and
consent-log changes, read back the way a browser would (html.parser, not byte equality)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import insert

from newsletter.domain.report_chart import hourly_chart, nice_top
from newsletter.domain.subscriber import Source
from newsletter.infra.db.schema import provider_events
from newsletter.services.report import bounce_reason, build_report
from newsletter.services.subscribers import Context

SVG = "{http://www.w3.org/2000/svg}"
VOID = {"meta", "link", "br", "img", "input", "hr", "source", "wbr"}
LONG_URL = "https://example.org/" + "a-long-path-segment-without-breaks-" * 4 + "end"


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    @property
    def own_text(self) -> str:
        return " ".join(" ".join(c for c in self.children if isinstance(c, str)).split())

    @property
    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text for c in self.children]
        return " ".join(" ".join(parts).split())

    def all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if (tag is None or child.tag == tag) and (
                    cls is None or cls in child.attrs.get("class", "").split()
                ):
                    found.append(child)
                found.extend(child.all(tag, cls))
        return found


class Tree(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        while len(self.stack) > 1:
            if self.stack.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def section(page: Node, heading_id: str) -> Node:
    return next(s for s in page.all("section") if s.attrs.get("aria-labelledby") == heading_id)


def cards(page: Node) -> dict[str, str]:
    """Card title -> its figure line ("5 41.7%")."""
    return {c.all("h3")[0].text: c.all("p", "value")[0].text for c in page.all("div", "card")}


def reasons(part: Node) -> dict[str, tuple[str, list[str]]]:
    """Reason label -> (count, its tags)."""
    found = {}
    for tr in part.all("tbody")[0].all("tr"):
        label, count = tr.all("td")
        found[label.own_text] = (count.text, [t.text for t in label.all("span", "tag")])
    return found


@dataclass
class Scenario:
    send_id: int
    html: str
    page: Node
    stats: dict


def event(send_id, at, kind, subscriber_id, detail=None, provider="sendgrid", **extra) -> dict:
    event.count = getattr(event, "count", 0) + 1
    return {
        "provider": provider,
        "event_id": f"test-{event.count}",
        "kind": kind,
        "subscriber_id": subscriber_id,
        "send_id": send_id,
        "occurred_at": at,
        "received_at": at,
        "detail": detail,
        "machine": False,
        **extra,
    }


def make_send(sending, cli, tmp_path: Path) -> Scenario:
    """Twelve readers, one send, and a known set of what happened after it."""
    ids = sending.add(12)
    _, record = sending.run("outbox")
    start, sid = record.created_at, record.id

    def at(hours: float):
        return start + timedelta(hours=hours)

    rows_ = [event(sid, at(0.1), "delivered", i) for i in ids[:8]]
    rows_ += [
        event(sid, None, "bounce", ids[8], "5.1.1", provider="mail", received_at=at(1)),
        event(sid, at(1), "bounce", ids[9], "550 5.1.1 <reader9@example.com>: User unknown"),
        event(sid, at(1), "bounce", ids[10], "550-5.1.1 The account does not exist"),
        event(sid, None, "soft-bounce", ids[11], "4.2.2", provider="mail", received_at=at(2)),
        # opens: ids0 twice in hour 0 (one person), ids1 hour 1, ids5 hour 2 by received_at,
        # ids2 hour 30; a machine open and an open after 72 hours are not charted
        event(sid, at(0.5), "open", ids[0]),
        event(sid, at(0.7), "open", ids[0]),
        event(sid, at(1.2), "open", ids[1]),
        event(sid, None, "open", ids[5], received_at=at(2.5)),
        event(sid, at(30), "open", ids[2]),
        event(sid, at(0.1), "open", ids[3], machine=True),
        event(sid, at(80), "open", ids[4]),
        # clicks: own tracking and SendGrid alike; 72 h exactly is past the window
        event(sid, at(0.8), "click", ids[0], "https://example.org/a"),
        event(sid, at(1.5), "click", ids[1], "https://example.org/a", provider="own"),
        event(sid, at(1.6), "click", ids[1], LONG_URL, provider="own"),
        event(sid, at(71.9), "click", ids[2], "https://example.org/a"),
        event(sid, at(72), "click", ids[6], "javascript:alert(1)"),
        event(sid, at(3), "spamreport", ids[7]),
    ]
    with sending.engine.begin() as connection:
        connection.execute(insert(provider_events), rows_)
    store = sending.store
    store.unsubscribe(ids[0], Context(Source.ONE_CLICK))
    store.unsubscribe(ids[1], Context(Source.ONE_CLICK))
    store.unsubscribe(ids[2], Context(Source.WEB_FORM))
    store.unsubscribe(ids[3], Context(Source.MAILTO, "inbound unsubscribe mail:<m1@x.example>"))
    store.unsubscribe(ids[4], Context(Source.PROVIDER, "sendgrid unsubscribe ev-1"))
    store.unsubscribe(ids[5], Context(Source.PROVIDER, "sendgrid unsubscribe ev-2"))
    out = tmp_path / "report.html"
    result = cli("report", str(sid), "--out", str(out))
    assert result.code == 0, result.err
    html = out.read_text(encoding="utf-8")
    stats = json.loads(cli("stats", str(sid), "--json").out)
    return Scenario(sid, html, Tree(html).root, stats)


@pytest.fixture
def scenario(sending, cli, tmp_path) -> Scenario:
    return make_send(sending, cli, tmp_path)


def test_page_figures_are_the_statistics_of_the_send(scenario):
    s, shown = scenario.stats, cards(scenario.page)
    assert shown["Recipients"] == "12"
    assert shown["Delivered"] == "8 66.7%"  # of sent, as the provider reported it
    assert shown["Unique opens"] == f"{s['opens']} {s['opens'] / 8:.1%}" == "5 62.5%"
    assert shown["Machine opens"] == "1"
    assert shown["Unique clicks"] == "4 50.0%"
    assert shown["Bounced"] == f"{s['bounced']} {s['bounced'] / 8:.1%}"
    assert shown["Complained"] == "1 12.5%"
    assert shown["Unsubscribed"] == "6 75.0%"
    recipients = scenario.page.all("div", "card")[0].text
    assert "sent 12 failed 0 skipped 0 uncertain 0" in recipients
    left = next(c for c in scenario.page.all("div", "card") if "Unsubscribed" in c.text).text
    assert "one-click 2 page 1 mailto 1 provider 2" in left


def test_chart_is_well_formed_svg_with_one_point_per_hour_over_72_hours(scenario):
    svg = re.search(r"<svg.*?</svg>", scenario.html, re.S)
    assert svg is not None
    root = ET.fromstring(svg.group(0))  # well-formed XML, or this raises
    assert root.get("data-hours") == "72" and root.get("viewBox")
    assert root.get("width") is None  # scales to its container (375 px phones)
    assert root.find(f"{SVG}title").text and root.find(f"{SVG}desc").text
    lines = {p.get("data-series"): p for p in root.iter(f"{SVG}polyline")}
    assert set(lines) == {"opens", "clicks"}
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "tick"]
    assert ticks == ["0 h", "24 h", "48 h", "72 h"]
    tick_x = [float(t.get("x")) for t in root.iter(f"{SVG}text") if t.get("class") == "tick"]
    for line in lines.values():
        xs = [float(p.split(",")[0]) for p in line.get("points").split()]
        assert len(xs) == 72
        assert tick_x[0] < xs[0] and xs[-1] < tick_x[-1] and xs == sorted(xs)
    legend = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "legend"]
    assert legend == ["Opens", "Clicks"]


def test_chart_counts_people_per_hour_and_leaves_out_machine_and_late_events(scenario, sending):
    report = build_report(sending.engine, scenario.send_id)
    opens = {h: n for h, n in enumerate(report.opens_by_hour) if n}
    clicks = {h: n for h, n in enumerate(report.clicks_by_hour) if n}
    assert opens == {0: 1, 1: 1, 2: 1, 30: 1}  # two opens in one hour: one person
    assert clicks == {0: 1, 1: 1, 71: 1}  # 72 h exactly is outside
    assert report.not_charted == {"open": 1, "click": 1}
    caption = section(scenario.page, "hourly").all("figcaption")[0].text
    assert "Unique people per hour" in caption
    assert "1 click event, 1 open event from before the send or after its first 72" in caption


def test_bounce_reasons_group_variants_of_one_status_code(scenario):
    found = reasons(section(scenario.page, "bounces"))
    assert found == {
        "5.1.1 mailbox does not exist": ("3", ["bounce"]),
        "4.2.2 temporary: mailbox problem": ("1", ["soft bounce"]),
    }
    assert "reader9@example.com" not in scenario.html  # addresses are taken out of examples


def test_unsubscribe_reasons_are_grouped_by_path(scenario):
    found = reasons(section(scenario.page, "left"))
    assert found == {
        "the mail client's unsubscribe button": ("2", ["one-click"]),
        "SendGrid unsubscribe event": ("2", ["provider"]),
        "mail to the unsubscribe address": ("1", ["mailto"]),
        "the unsubscribe page (footer link)": ("1", ["page"]),
    }


def test_top_links_wrap_and_only_web_addresses_are_links(scenario):
    links = section(scenario.page, "links")
    first = links.all("tbody")[0].all("tr")[0]
    assert [td.text for td in first.all("td")] == ["https://example.org/a", "3"]
    anchors = [a.attrs["href"] for a in links.all("a")]
    assert anchors == ["https://example.org/a", LONG_URL]
    assert "javascript:alert(1)" not in anchors
    assert "overflow-wrap: anywhere" in scenario.html  # long URLs wrap instead of overflowing


def test_page_loads_nothing_from_elsewhere(scenario):
    page = scenario.page
    for tag in ("script", "link", "img", "iframe", "object", "embed"):
        assert not page.all(tag), tag
    top_links = {a.attrs["href"] for a in section(page, "links").all("a")}
    for node in page.all():
        for name in ("src", "href", "xlink:href", "srcset", "action", "data"):
            value = node.attrs.get(name, "")
            if re.match(r"\s*(https?:)?//", value):
                assert name == "href" and value in top_links, (node.tag, name, value)
    style = " ".join(s.text for s in page.all("style"))
    assert "@import" not in style and "url(" not in style
    assert not re.search(r"\son\w+=", scenario.html)  # no inline event handlers


def test_send_without_provider_events_shows_empty_states(sending, cli, tmp_path):
    sending.add(3)
    _, record = sending.run("outbox")
    out = tmp_path / "empty.html"
    assert cli("report", str(record.id), "--out", str(out)).code == 0
    page = Tree(out.read_text(encoding="utf-8")).root
    notice = page.all("div", "notice")[0].text
    assert "No provider events yet" in notice and "report only what the server took" in notice
    assert not page.all("svg")
    empty = [p.text for p in page.all("p", "empty")]
    assert any("No opens or clicks" in t for t in empty)
    assert "No clicks yet." in empty and "No bounces or drops reported." in empty
    assert any("Nobody has unsubscribed" in t for t in empty)
    shown = cards(page)
    assert shown["Delivered"] == "3" and shown["Unique opens"] == "0 0.0%"


def test_unknown_send_id_fails_as_stats_does_and_writes_nothing(sending, cli, tmp_path):
    out = tmp_path / "none.html"
    stats = cli("stats", "999")
    result = cli("report", "999", "--out", str(out))
    assert result.code == stats.code == 2
    assert "no send #999" in result.err and "no send #999" in stats.err
    assert not out.exists() and list(tmp_path.glob(".none.html.*")) == []


def test_out_in_a_missing_folder_is_an_input_error_naming_it(sending, cli, tmp_path):
    sending.add(1)
    _, record = sending.run("outbox")
    out = tmp_path / "missing" / "report.html"
    result = cli("report", str(record.id), "--out", str(out))
    assert result.code == 2
    assert "missing" in result.err and "does not exist" in result.err
    assert not out.parent.exists()


def test_report_replaces_the_file_whole_and_prints_its_path(sending, cli, tmp_path):
    sending.add(1)
    _, record = sending.run("outbox")
    folder = tmp_path / "reports"
    folder.mkdir()
    out = folder / "report.html"
    out.write_text("old", encoding="utf-8")
    result = cli("report", str(record.id), "--out", str(out))
    assert result.code == 0 and result.out.strip().endswith("report.html")
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert [p.name for p in folder.iterdir()] == ["report.html"]  # no temp file left


@pytest.mark.parametrize(
    ("detail", "group"),
    [
        ("550 5.1.1 user unknown", "5.1.1 mailbox does not exist"),
        ("550-5.1.1 <a@b.example>: Recipient address rejected", "5.1.1 mailbox does not exist"),
        ("5.1.1", "5.1.1 mailbox does not exist"),
        ("5.1.1, 5.2.2", "5.1.1 mailbox does not exist"),
        ("452 4.2.2 Mailbox full, try later", "4.2.2 temporary: mailbox problem"),
        ("554 5.7.1 Client host [203.0.113.9] blocked", "5.7.1 refused by policy (blocked)"),
        ("550 Requested action not taken", "550 mailbox unavailable"),
        ("Bounced Address", "address bounced before"),
        ("bounce", "bounced (no reason given)"),
        (None, "no reason given"),
        ("Mailbox 17 over quota", "mailbox # over quota"),
    ],
)
def test_bounce_reasons_normalise_to_one_group_per_cause(detail, group):
    assert bounce_reason(detail) == group


def test_chart_of_no_activity_is_still_drawn_with_a_scale():
    root = ET.fromstring(hourly_chart([0] * 72, [0] * 72))
    assert len(list(root.iter(f"{SVG}polyline"))) == 2
    assert "no opens; no clicks" in root.find(f"{SVG}desc").text


def test_chart_text_is_escaped():
    root = ET.fromstring(hourly_chart([1] * 72, [0] * 72, title="<Opens> & clicks"))
    assert root.find(f"{SVG}title").text == "<Opens> & clicks"


@pytest.mark.parametrize(
    ("peak", "top"), [(0, (1, 1)), (1, (1, 1)), (3, (3, 1)), (7, (8, 2)), (23, (30, 10))]
)
def test_y_axis_tops_are_round_numbers_above_the_peak(peak, top):
    assert nice_top(peak) == top
