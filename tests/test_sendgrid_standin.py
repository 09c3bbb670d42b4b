"""The SendGrid stand-in, driven by the real `sendgrid` client over loopback HTTP.

What the stand-in accepts and rejects is what the project's sender will be held to, so each
rule of SendGrid's Mail Send API gets a test here, and so do the failures a sender must survive
(401, 413, 429, 5xx, timeouts).
"""

from __future__ import annotations

import copy
import gzip
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from python_http_client.exceptions import (
    BadRequestsError,
    HTTPError,
    InternalServerError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    TooManyRequestsError,
    UnauthorizedError,
)
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Asm,
    Category,
    Content,
    CustomArg,
    From,
    GroupId,
    Header,
    Mail,
    MailSettings,
    Personalization,
    SandBoxMode,
    Substitution,
    To,
)
from sendgrid_standin import (
    AUTH_ERROR,
    RESERVED_HEADERS,
    SendGridStandIn,
    check_mail_send,
    spec_path,
)

KEY = "SG.test-key"
ONE_CLICK = "List-Unsubscribe=One-Click"
Body = dict[str, Any]


@pytest.fixture
def standin() -> Iterator[SendGridStandIn]:
    with SendGridStandIn(KEY) as server:
        yield server


@pytest.fixture
def sg(standin: SendGridStandIn) -> SendGridAPIClient:
    return SendGridAPIClient(api_key=KEY, host=standin.url)


def valid_body() -> Body:
    """The smallest body SendGrid accepts, for rejection tests to break one thing at a time."""
    return {
        "personalizations": [{"to": [{"email": "ada@example.com", "name": "Ada"}]}],
        "from": {"email": "news@example.com", "name": "News"},
        "subject": "Issue 12",
        "content": [
            {"type": "text/plain", "value": "Hello"},
            {"type": "text/html", "value": "<p>Hello</p>"},
        ],
    }


def people(n: int, start: int = 0) -> list[dict[str, str]]:
    return [{"email": f"reader{i}@example.com"} for i in range(start, start + n)]


def errors_of(exc: HTTPError) -> list[dict[str, Any]]:
    """The `errors` array of an error answer, checking SendGrid's shape on the way."""
    errors = json.loads(exc.body)["errors"]
    assert errors
    for error in errors:
        assert {"message", "field", "help"} <= error.keys()
        assert error["message"]
    return errors


def post_raw(url: str, data: bytes, headers: dict[str, str], method: str = "POST") -> Any:
    """urllib directly, for what the sendgrid client cannot send (bad JSON, gzip, no key)."""
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def newsletter_mail() -> Mail:
    """A newsletter as the project builds it: one personalization per reader, each with its own
    substitutions, one-click unsubscribe headers and custom_args."""
    mail = Mail(from_email=From("news@example.com", "The Newsletter"), subject="Issue -issue-")
    for i, (address, name) in enumerate([("ada@example.com", "Ada"), ("bo@example.org", "Bo")]):
        item = Personalization()
        item.add_to(To(address, name))
        item.add_substitution(Substitution("-name-", name))
        item.add_substitution(Substitution("-issue-", "12"))
        item.add_header(Header("List-Unsubscribe", f"<https://example.com/u/tok{i}>"))
        item.add_header(Header("List-Unsubscribe-Post", ONE_CLICK))
        item.add_custom_arg(CustomArg("subscriber_id", str(i)))
        # The helper prepends by default (index=0): append to keep the readers' order.
        mail.add_personalization(item, index=i)
    mail.add_content(Content("text/html", "<p>Hi -name-</p>"))
    mail.add_content(Content("text/plain", "Hi -name-"))
    mail.custom_arg = CustomArg("issue", "2026-12")
    mail.category = Category("newsletter")
    mail.asm = Asm(GroupId(42))
    settings = MailSettings()
    settings.sandbox_mode = SandBoxMode(False)
    mail.mail_settings = settings
    return mail


# -- accepted requests -----------------------------------------------------------------------


def test_helper_built_newsletter_is_accepted_and_recorded_as_sent(
    standin: SendGridStandIn, sg: SendGridAPIClient
) -> None:
    mail = newsletter_mail()
    response = sg.send(mail)

    assert response.status_code == 202
    assert response.body == b""
    assert len(response.headers["X-Message-Id"]) == 22
    assert standin.accepted == [mail.get()]
    sent = standin.accepted[0]
    first = sent["personalizations"][0]
    assert first["headers"] == {
        "List-Unsubscribe": "<https://example.com/u/tok0>",
        "List-Unsubscribe-Post": ONE_CLICK,
    }
    assert first["substitutions"] == {"-name-": "Ada", "-issue-": "12"}
    assert first["custom_args"] == {"subscriber_id": "0"}
    # Message-level custom_args is an object: the schema's "string" is patched.
    assert sent["custom_args"] == {"issue": "2026-12"}
    assert sent["content"][0]["type"] == "text/plain"  # the helper puts text/plain first
    assert sent["asm"] == {"group_id": 42}
    assert standin.recipients() == ["ada@example.com", "bo@example.org"]
    assert (standin.accepted_count, standin.recipients_accepted) == (1, 2)
    assert standin.rejected == []


def test_each_accepted_request_gets_its_own_message_id(sg: SendGridAPIClient) -> None:
    ids = {sg.send(valid_body()).headers["X-Message-Id"] for _ in range(3)}
    assert len(ids) == 3


def test_sandbox_mode_answers_200_and_is_not_counted_as_sent(
    standin: SendGridStandIn, sg: SendGridAPIClient
) -> None:
    """SendGrid validates a sandboxed request and answers 200 without queueing it."""
    body = valid_body()
    body["mail_settings"] = {"sandbox_mode": {"enable": True}}
    response = sg.send(body)
    assert response.status_code == 200
    assert (standin.accepted_count, standin.sandboxed_count) == (0, 1)
    assert standin.sandboxed == [body]


def test_limits_at_their_edge_are_accepted(standin: SendGridStandIn, sg: SendGridAPIClient) -> None:
    body = valid_body()
    body["personalizations"] = [{"to": [person]} for person in people(1000)]
    # Exactly 10,000 bytes as compact JSON: {"-s-":"xxx..."} is 10 bytes plus the value.
    body["personalizations"][0]["substitutions"] = {"-s-": "x" * 9_990}
    body["categories"] = [f"{i}".ljust(255, "c") for i in range(10)]
    body["send_at"] = int(time.time()) + 71 * 3600
    body["personalizations"][0]["to"][0]["name"] = "Zoë Ångström"  # Unicode names are fine
    assert sg.client.mail.send.post(request_body=body).status_code == 202
    assert standin.recipients_accepted == 1000
    assert standin.recipients()[-1] == "reader999@example.com"


def test_the_specs_own_examples_pass() -> None:
    """Both request examples in tsg_mail_v3.json validate: the schema wiring ($refs) works."""
    spec = json.loads(spec_path().read_text(encoding="utf-8"))
    examples = spec["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"][
        "examples"
    ]
    assert examples
    for example in examples.values():
        assert check_mail_send(example["value"]) == []


# -- rejected requests -----------------------------------------------------------------------


def change(path: str, value: Any) -> Callable[[Body], None]:
    """A mutation setting one dotted path (list indices as numbers) of the valid body."""

    def apply(body: Body) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return apply


def drop(key: str) -> Callable[[Body], None]:
    return lambda body: body.pop(key)


def personalizations(items: list[Body]) -> Callable[[Body], None]:
    return change("personalizations", items)


def both(*mutations: Callable[[Body], None]) -> Callable[[Body], None]:
    def apply(body: Body) -> None:
        for mutate in mutations:
            mutate(body)

    return apply


LATER = int(time.time()) + 73 * 3600

REJECTIONS: dict[str, tuple[Callable[[Body], None], str | None, str]] = {
    # SendGrid's own rules, which the OpenAPI schema leaves out.
    "no personalizations": (personalizations([]), "personalizations", "at least one"),
    "personalizations missing": (drop("personalizations"), "personalizations", "at least one"),
    "1001 personalizations": (
        personalizations([{"to": [p]} for p in people(1001)]),
        "personalizations",
        "limited to 1000",
    ),
    "1001 recipients over two personalizations": (
        personalizations([{"to": people(500)}, {"to": people(1, 500), "bcc": people(500, 501)}]),
        "personalizations",
        "1000 total recipients",
    ),
    "empty to": (personalizations([{"to": []}]), "personalizations.0.to", "to array"),
    "same address twice across personalizations, any case": (
        personalizations([{"to": people(2)}, {"to": [{"email": "Reader1@EXAMPLE.com"}]}]),
        "personalizations.1.to.0.email",
        "Reader1@EXAMPLE.com",
    ),
    "same address in to and bcc": (
        personalizations([{"to": people(1), "bcc": people(1)}]),
        "personalizations.0.bcc.0.email",
        "only be included once",
    ),
    "substitutions over 10,000 bytes": (
        change("personalizations.0.substitutions", {"-long-": "x" * 10_000}),
        "personalizations.0.substitutions",
        "10000 bytes",
    ),
    "custom_args over 10,000 bytes with the message-level ones": (
        both(
            change("custom_args", {"campaign": "c" * 6_000}),
            change("personalizations.0.custom_args", {"subscriber": "s" * 6_000}),
        ),
        "personalizations.0.custom_args",
        "10000 bytes",
    ),
    "message-level custom_args over 10,000 bytes": (
        change("custom_args", {"campaign": "c" * 10_001}),
        "custom_args",
        "10000 bytes",
    ),
    "11 categories": (change("categories", [f"c{i}" for i in range(11)]), "categories", "10"),
    "category of 256 characters": (change("categories", ["c" * 256]), "categories.0", "255"),
    "send_at 73 hours ahead": (change("send_at", LATER), "send_at", "72 hours"),
    "personalization send_at 73 hours ahead": (
        change("personalizations.0.send_at", LATER),
        "personalizations.0.send_at",
        "72 hours",
    ),
    "text/html before text/plain": (
        change(
            "content",
            [{"type": "text/html", "value": "<p>Hi</p>"}, {"type": "text/plain", "value": "Hi"}],
        ),
        "content.0.type",
        "text/plain must be the first",
    ),
    "text/plain twice": (
        change(
            "content", [{"type": "text/plain", "value": "a"}, {"type": "text/plain", "value": "b"}]
        ),
        "content",
        "only be provided once",
    ),
    "semicolon in a to name": (
        change("personalizations.0.to.0.name", "Lovelace; Ada"),
        "personalizations.0.to.0.name",
        "';' or ','",
    ),
    "comma in a cc name": (
        change("personalizations.0.cc", [{"email": "bo@example.com", "name": "Bo, Jr"}]),
        "personalizations.0.cc.0.name",
        "';' or ','",
    ),
    "non-ASCII from address": (change("from.email", "nëws@example.com"), "from.email", "ASCII"),
    "non-ASCII personalization from address": (
        change("personalizations.0.from", {"email": "news@exämple.com"}),
        "personalizations.0.from.email",
        "ASCII",
    ),
    "reserved header in a personalization": (
        change("personalizations.0.headers", {"List-Unsubscribe": "<https://x>", "SUBJECT": "x"}),
        "personalizations.0.headers.SUBJECT",
        "reserved",
    ),
    "header value not a string": (
        change("headers", {"X-Priority": 1}),
        "headers.X-Priority",
        "Expected: string",
    ),
    "no subject anywhere": (drop("subject"), "subject", "subject is required"),
    "no content and no template": (drop("content"), "content", "content parameter is required"),
    # What the official schema itself rejects.
    "no from": (drop("from"), "from", "required"),
    "to entry without email": (
        change("personalizations.0.to.0", {"name": "Ada"}),
        "personalizations.0.to.0.email",
        "required",
    ),
    "email not a string": (
        change("personalizations.0.to.0.email", ["ada@example.com"]),
        "personalizations.0.to.0.email",
        "Invalid type. Expected: string, given: array.",
    ),
    "email without @": (
        change("personalizations.0.to.0.email", "ada.example.com"),
        "personalizations.0.to.0.email",
        "valid address",
    ),
    "empty content value": (change("content.1.value", ""), "content.1.value", "at least 1"),
    "message-level custom_args as a string": (
        change("custom_args", "issue=12"),
        "custom_args",
        "Expected: object, given: string",
    ),
    "custom_args value not a string": (
        change("custom_args", {"issue": 12}),
        "custom_args.issue",
        "Expected: string, given: integer",
    ),
    "personalization custom_args value not a string": (
        change("personalizations.0.custom_args", {"subscriber_id": 7}),
        "personalizations.0.custom_args.subscriber_id",
        "Expected: string, given: integer",
    ),
    "unknown attachment disposition": (
        change("attachments", [{"content": "aGk=", "filename": "a.txt", "disposition": "x"}]),
        "attachments.0.disposition",
        "inline, attachment",
    ),
    "ip_pool_name too short": (change("ip_pool_name", "p"), "ip_pool_name", "at least 2"),
    "asm without group_id": (change("asm", {}), "asm.group_id", "required"),
    "body not an object": (lambda body: None, None, "Expected: object, given: array"),
}


@pytest.mark.parametrize("case", REJECTIONS, ids=list(REJECTIONS))
def test_rule_breaking_request_is_rejected_with_a_pointed_error(
    case: str, standin: SendGridStandIn, sg: SendGridAPIClient
) -> None:
    mutate, field, fragment = REJECTIONS[case]
    body: Any = valid_body()
    mutate(body)
    if case == "body not an object":
        body = [body]
    with pytest.raises(BadRequestsError) as caught:
        sg.client.mail.send.post(request_body=body)

    assert caught.value.status_code == 400
    errors = errors_of(caught.value)
    matching = [e for e in errors if e["field"] == field]
    assert matching, errors
    assert any(fragment in e["message"] for e in matching), matching
    if field:
        assert matching[0]["help"].startswith("http://sendgrid.com/docs/")
    assert standin.rejected == [(400, json.loads(caught.value.body))]
    assert (standin.accepted_count, standin.accepted) == (0, [])


@pytest.mark.parametrize("name", sorted(RESERVED_HEADERS))
def test_reserved_header_is_rejected_in_any_case(name: str, sg: SendGridAPIClient) -> None:
    body = valid_body()
    header = name.swapcase()
    body["headers"] = {header: "x"}
    with pytest.raises(BadRequestsError) as caught:
        sg.client.mail.send.post(request_body=body)
    assert [e["field"] for e in errors_of(caught.value)] == [f"headers.{header}"]


def test_a_bad_personalization_after_999_good_ones_is_still_found(
    sg: SendGridAPIClient,
) -> None:
    """Alike personalizations are validated once: an odd one at the end must not slip by."""
    body = valid_body()
    body["personalizations"] = [{"to": [p]} for p in people(1000)]
    body["personalizations"][999]["to"][0]["email"] = "reader999.example.com"
    with pytest.raises(BadRequestsError) as caught:
        sg.client.mail.send.post(request_body=body)
    assert [e["field"] for e in errors_of(caught.value)] == ["personalizations.999.to.0.email"]


def test_invalid_json_is_a_400_in_sendgrids_shape(standin: SendGridStandIn) -> None:
    status, _, raw = post_raw(
        standin.url + "/v3/mail/send",
        b'{"personalizations": [',
        {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    assert status == 400
    (error,) = json.loads(raw)["errors"]
    assert error.keys() == {"message", "field", "help"}
    assert "not valid JSON" in error["message"]


def test_gzip_body_is_accepted(standin: SendGridStandIn) -> None:
    """Mail body compression (Content-Encoding: gzip) is part of the spec."""
    status, _, _ = post_raw(
        standin.url + "/v3/mail/send",
        gzip.compress(json.dumps(valid_body()).encode()),
        {
            "Authorization": f"Bearer {KEY}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert status == 202
    assert standin.recipients() == ["ada@example.com"]


# -- authorization, size, routing ------------------------------------------------------------


def test_wrong_key_is_401(standin: SendGridStandIn) -> None:
    sg = SendGridAPIClient(api_key="SG.wrong", host=standin.url)
    with pytest.raises(UnauthorizedError) as caught:
        sg.send(valid_body())
    assert caught.value.status_code == 401
    assert json.loads(caught.value.body) == AUTH_ERROR
    assert standin.rejected == [(401, AUTH_ERROR)]


def test_missing_authorization_is_401(standin: SendGridStandIn) -> None:
    status, _, raw = post_raw(
        standin.url + "/v3/mail/send",
        json.dumps(valid_body()).encode(),
        {"Content-Type": "application/json"},
    )
    assert (status, json.loads(raw)) == (401, AUTH_ERROR)


def test_body_over_the_size_limit_is_413() -> None:
    with SendGridStandIn(KEY, max_request_bytes=2_000) as small:
        sg = SendGridAPIClient(api_key=KEY, host=small.url)
        body = valid_body()
        body["content"][0]["value"] = "x" * 300_000  # well past socket buffers: must be read
        with pytest.raises(PayloadTooLargeError) as caught:
            sg.send(body)
        assert caught.value.status_code == 413
        assert json.loads(caught.value.body) == {
            "errors": [{"field": None, "message": "payload too large"}]
        }
        assert sg.send(valid_body()).status_code == 202  # the server is still fine


def test_other_paths_and_methods_are_404(standin: SendGridStandIn, sg: SendGridAPIClient) -> None:
    with pytest.raises(NotFoundError):
        sg.client.mail.batch.post(request_body={})
    status, headers, raw = post_raw(standin.url + "/v3/mail/send", b"", {}, method="GET")
    assert status == 404
    assert headers["Content-Type"] == "application/json"
    assert json.loads(raw)["errors"][0]["message"]


# -- injected failures -----------------------------------------------------------------------


def test_fail_next_429_carries_rate_limit_headers_then_recovers(
    standin: SendGridStandIn, sg: SendGridAPIClient
) -> None:
    standin.fail_next(429)
    before = int(time.time())
    with pytest.raises(TooManyRequestsError) as caught:
        sg.send(valid_body())
    assert caught.value.status_code == 429
    assert json.loads(caught.value.body) == {
        "errors": [{"field": None, "message": "too many requests"}]
    }
    headers = caught.value.headers
    assert headers["X-RateLimit-Limit"].isdigit()
    assert headers["X-RateLimit-Remaining"] == "0"
    assert before + 1 <= int(headers["X-RateLimit-Reset"]) <= int(time.time()) + 1
    assert sg.send(valid_body()).status_code == 202
    assert standin.rejected == []  # injected failures are not validation rejections


def test_fail_next_takes_headers_and_body(sg: SendGridAPIClient, standin: SendGridStandIn) -> None:
    standin.fail_next(429, headers={"Retry-After": "3"}, body={"errors": [{"message": "slow"}]})
    with pytest.raises(TooManyRequestsError) as caught:
        sg.send(valid_body())
    assert caught.value.headers["Retry-After"] == "3"
    assert "X-RateLimit-Reset" in caught.value.headers
    assert json.loads(caught.value.body) == {"errors": [{"message": "slow"}]}


def test_fail_next_500_counts_down(standin: SendGridStandIn, sg: SendGridAPIClient) -> None:
    standin.fail_next(500, count=2)
    standin.fail_next(503)
    for expected in (InternalServerError, InternalServerError, ServiceUnavailableError):
        with pytest.raises(expected) as caught:
            sg.send(valid_body())
        assert json.loads(caught.value.body) == {
            "errors": [{"field": None, "message": "internal error"}]
        }
    assert sg.send(valid_body()).status_code == 202
    assert standin.accepted_count == 1


def test_a_401_does_not_use_up_an_injected_failure(
    standin: SendGridStandIn, sg: SendGridAPIClient
) -> None:
    standin.fail_next(500)
    with pytest.raises(UnauthorizedError):
        SendGridAPIClient(api_key="SG.wrong", host=standin.url).send(valid_body())
    with pytest.raises(InternalServerError):
        sg.send(valid_body())


def test_fail_next_refuses_a_success_status(standin: SendGridStandIn) -> None:
    with pytest.raises(ValueError):
        standin.fail_next(202)


def test_delay_next_makes_the_client_time_out(
    standin: SendGridStandIn, sg: SendGridAPIClient
) -> None:
    """python_http_client passes `Client.timeout` to urllib; SendGridAPIClient has no argument
    for it, so a sender sets `sg.client.timeout` (or `timeout=` on a `post`)."""
    standin.delay_next(2.0)
    sg.client.timeout = 0.2
    started = time.monotonic()
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        sg.send(valid_body())
    assert time.monotonic() - started < 1.5
    assert sg.send(valid_body()).status_code == 202  # the delay was used up


# -- bookkeeping -----------------------------------------------------------------------------


def test_record_false_keeps_counts_but_no_bodies() -> None:
    with SendGridStandIn(KEY, record=False) as quiet:
        sg = SendGridAPIClient(api_key=KEY, host=quiet.url)
        body = valid_body()
        body["personalizations"] = [{"to": people(2), "cc": people(1, 2), "bcc": people(1, 3)}]
        sg.send(body)
        sg.send(body)
        assert (quiet.accepted_count, quiet.recipients_accepted) == (2, 8)
        assert quiet.accepted == []
        with pytest.raises(RuntimeError):
            quiet.recipients()


def test_concurrent_senders_are_all_counted(standin: SendGridStandIn) -> None:
    def send_batch(offset: int) -> None:
        client = SendGridAPIClient(api_key=KEY, host=standin.url)
        for k in range(5):
            body = copy.deepcopy(valid_body())
            body["personalizations"] = [{"to": people(3, offset * 100 + k * 10)}]
            client.send(body)

    threads = [threading.Thread(target=send_batch, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (standin.accepted_count, standin.recipients_accepted) == (20, 60)
    assert len(set(standin.recipients())) == 60


def test_url_needs_a_running_server() -> None:
    with pytest.raises(RuntimeError):
        _ = SendGridStandIn().url
