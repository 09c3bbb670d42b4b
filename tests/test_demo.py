"""The demo connects: links in the demo's outbox work in a local `serve`."""

from __future__ import annotations

import pytest

from newsletter.domain.tokens import Purpose
from newsletter.errors import ConfigError
from newsletter.infra.settings import KEY_FILE
from newsletter.infra.workspace import open_workspace
from newsletter.services.keys import serving_signer


def test_serve_on_loopback_uses_the_demo_key_with_a_warning(sample, monkeypatch):
    monkeypatch.delenv("NEWSLETTER_SECRET_KEY", raising=False)
    workspace = open_workspace(sample.root)
    with pytest.raises(ConfigError):  # no demo key yet: nothing to fall back on
        serving_signer(workspace, "127.0.0.1")
    workspace.state_dir.mkdir(parents=True, exist_ok=True)
    (workspace.state_dir / KEY_FILE).write_text("demo-key-0123456789abcdef")
    signer, warning = serving_signer(workspace, "127.0.0.1")
    assert warning and "demo" in warning and "NEWSLETTER_SECRET_KEY" in warning
    assert "demo-key-0123456789abcdef" not in warning
    from newsletter.domain.tokens import Signer

    token = Signer(["demo-key-0123456789abcdef"]).sign(Purpose.UNSUBSCRIBE, 7)
    assert signer.verify(token, Purpose.UNSUBSCRIBE).subscriber_id == 7
    for public in ("0.0.0.0", "192.0.2.10", "news.example.com"):
        with pytest.raises(ConfigError):
            serving_signer(workspace, public)


def test_a_configured_key_wins_over_the_demo_key(sample, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "real-key-0123456789abcdef")
    workspace = open_workspace(sample.root)
    workspace.state_dir.mkdir(parents=True, exist_ok=True)
    (workspace.state_dir / KEY_FILE).write_text("demo-key-0123456789abcdef")
    _, warning = serving_signer(workspace, "127.0.0.1")
    assert warning is None


def test_the_demos_unsubscribe_link_works_in_a_local_serve(sample, cli, monkeypatch):
    import re
    import shutil

    import httpx
    from conftest import REPO, running

    from newsletter.domain.subscriber import Status
    from newsletter.infra.db.engine import connect
    from newsletter.services.subscribers import SubscriberStore
    from newsletter.web.server import build_app

    monkeypatch.delenv("NEWSLETTER_SECRET_KEY", raising=False)
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "http://127.0.0.1:8000")  # as `make demo`
    shutil.copytree(REPO / "subscribers", sample.root / "subscribers")
    assert cli("subscribers", "import", "subscribers/sample.csv").code == 0
    sent = cli("send", "2026-12-welcome", "--yes", "--if-unsent")
    assert sent.code == 0, sent.err
    first = sorted((sample.root / ".state" / "outbox").glob("send-*/*.eml"))[0].read_text()
    link = re.search(r"http://127\.0\.0\.1:8000(/u/[A-Za-z0-9_-]+)", first)
    assert link, "no local unsubscribe link in the demo's mail"
    workspace = open_workspace(sample.root)
    signer, warning = serving_signer(workspace, "127.0.0.1")
    assert warning
    with (
        connect(workspace.database_url) as engine,
        running(build_app(workspace, engine, signer)) as url,
    ):
        assert httpx.get(url + link.group(1)).status_code == 200
        done = httpx.post(url + link.group(1), data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200
        store = SubscriberStore(engine)
        assert Status.UNSUBSCRIBED in {r.status for r in store.list(limit=100)}
