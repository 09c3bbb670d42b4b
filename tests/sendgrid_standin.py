"""A local HTTP stand-in for SendGrid's v3 Mail Send API (POST /v3/mail/send).

Tests and benchmarks point the real `sendgrid` client at it
(`SendGridAPIClient(api_key=..., host=standin.url)`) so that every request is checked the way
SendGrid checks it, without network access or an account:

- the request body is validated against the official OpenAPI schema
  (`tests/sendgrid-oai/tsg_mail_v3.json`), with the message-level `custom_args` fixed to an
  object (the schema says string by mistake; the API and the Python helper send an object);
- the limits the schema leaves out are checked by hand (see `_rule_errors`);
- answers use SendGrid's status codes, headers and error body shape, and failures (429, 5xx)
  or slow answers can be injected to exercise retries and timeouts.

Kept lean for the million-recipient benchmark: the JSON schema is compiled once per process,
personalizations alike in outline (types, keys, lengths; see `_shape`) are schema-checked once,
and a request's body is kept only when `record=True`, so memory stays flat.

It also serves SendGrid's suppression lists (`tsg_suppressions_v3.json`) from in-memory lists
that tests seed (`seed`, `seed_group`): the global lists under /v3/suppression/ with real
limit/offset paging and start_time/end_time filters, and an unsubscribe group's suppressions
(GET, and POST to add). Every such request is checked against the operation the spec
defines for it (query parameters, required headers, body): one the spec does not allow is
answered 400 and recorded in `violations`, which `assert_no_violations` turns into a test
failure. That spec is compiled on the first such request, so Mail Send pays nothing for it.
"""

from __future__ import annotations

import copy
import hmac
import json
import os
import re
import secrets
import sys
import threading
import time
import traceback
import urllib.parse
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, ValidationError

__all__ = [
    "AUTH_ERROR",
    "MAIL_SEND_PATH",
    "RESERVED_HEADERS",
    "SUPPRESSION_LISTS",
    "ApiRequest",
    "SendGridStandIn",
    "check_mail_send",
    "spec_path",
    "suppressions_spec_path",
]

MAIL_SEND_PATH = "/v3/mail/send"
SCOPES_PATH = "/v3/scopes"  # GET: the key's permissions; a cheap authenticated call

# SendGrid's documented limits that the OpenAPI schema does not carry (its Mail Send docs).
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_SUBSTITUTIONS_BYTES = 10_000
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_CATEGORIES = 10
MAX_CATEGORY_CHARS = 255
MAX_SCHEDULE_AHEAD_S = 72 * 3600
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "Content-Type",
        "Content-Transfer-Encoding",
        "To",
        "From",
        "Subject",
        "Reply-To",
        "CC",
        "BCC",
    )
)

HELP_BASE = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message."
AUTH_ERROR = {
    "errors": [
        {
            "field": None,
            "message": "The provided authorization grant is invalid, expired, or revoked",
            "help": None,
        }
    ]
}
TOO_LARGE_ERROR = {"errors": [{"field": None, "message": "payload too large"}]}
RATE_LIMIT_ERROR = {"errors": [{"field": None, "message": "too many requests"}]}
SERVER_ERROR = {"errors": [{"field": None, "message": "internal error"}]}
NOT_FOUND_ERROR = {"errors": [{"field": None, "message": "resource not found"}]}

_JSON_TYPES: dict[type, str] = {
    type(None): "null",
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}

Json = dict[str, Any]
Error = dict[str, Any]


def spec_path() -> Path:
    """SendGrid's official schema, kept in tests/sendgrid-oai/ (MIT, see its LICENSE);
    $SENDGRID_MAIL_SPEC points at another copy (a newer one, to see what changed)."""
    override = os.environ.get("SENDGRID_MAIL_SPEC")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent / "sendgrid-oai" / "tsg_mail_v3.json"


def _inline_refs(node: Any, root: Json, seen: tuple[str, ...] = ()) -> Any:
    """Resolve every local `$ref` (`#/...`) in place: OpenAPI refs point into the whole
    document, and an inlined schema validates about twice as fast as one resolved per use."""
    if isinstance(node, list):
        return [_inline_refs(v, root, seen) for v in node]
    if not isinstance(node, dict):
        return node
    rest = {k: _inline_refs(v, root, seen) for k, v in node.items() if k != "$ref"}
    ref = node.get("$ref")
    if ref is None:
        return rest
    if not isinstance(ref, str) or not ref.startswith("#/") or ref in seen:
        raise ValueError(f"cannot inline $ref {ref!r}")
    target: Any = root
    for part in ref[2:].split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    resolved = _inline_refs(target, root, (*seen, ref))
    if all(resolved.get(k, v) == v for k, v in rest.items()):
        return {**resolved, **rest}  # siblings agree with the target: merge them
    return {**rest, "allOf": [resolved]}  # 2020-12: `$ref` and its siblings both apply


# Keywords whose verdict on a string depends only on (non-empty, contains "@"), and on other
# values only on their JSON type, keys and lengths: with only these in the personalization
# schema, personalizations of the same shape (see `_shape`) get the same verdict.
_SHAPE_SAFE_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "items",
        "additionalProperties",
        "maxItems",
        "minItems",
        "maxProperties",
        "minProperties",
        "minLength",
        "format",
        "uniqueItems",
        "allOf",
        "title",
        "description",
        "example",
        "examples",
    }
)


def _shape_is_exact(schema: Any) -> bool:
    """Whether `_shape` keeps everything `schema` can tell apart (checked once, at compile)."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict) or not set(schema) <= _SHAPE_SAFE_KEYWORDS:
        return False
    if schema.get("minLength", 0) > 1 or schema.get("format", "email") != "email":
        return False
    if schema.get("uniqueItems") is True:  # distinct strings share a shape
        return False
    subschemas = [
        *schema.get("properties", {}).values(),
        *schema.get("allOf", []),
        schema.get("items", True),
        schema.get("additionalProperties", True),
    ]
    return all(_shape_is_exact(sub) for sub in subschemas)


def _shape(value: Any) -> Any:
    """A hashable outline of a JSON value: types, keys and lengths, and for each string only
    whether it is empty or holds an "@" (all the personalization schema looks at)."""
    if isinstance(value, str):
        return "s" if not value else ("@" if "@" in value else "t")
    if isinstance(value, dict):
        return ("{", tuple((k, _shape(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("[", tuple(_shape(v) for v in value))
    if isinstance(value, float):
        return "i" if value.is_integer() else "f"
    return type(value).__name__  # bool, int, NoneType


@dataclass(frozen=True)
class _Schemas:
    """The compiled request-body schema, split so personalizations can be memoized."""

    body: Draft202012Validator  # whole body, personalizations' items taken as they are
    item: Draft202012Validator  # one personalization
    memoize: bool  # whether `_shape` decides the item schema's verdict
    valid_shapes: set[Any] = dataclass_field(default_factory=set)


@cache
def _schemas() -> _Schemas:
    """Compile the request-body schema once: per-request work must stay lean for benchmarks."""
    path = spec_path()
    if not path.is_file():
        raise FileNotFoundError(f"SendGrid OpenAPI spec not found at {path}")
    spec = json.loads(path.read_text(encoding="utf-8"))
    body_schema = _inline_refs(
        spec["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"][
            "schema"
        ],
        spec,
    )
    # The schema types message-level custom_args as a string; the API takes an object, as the
    # Python helper sends. At both levels SendGrid answers 400 to a value that is not a string
    # (a number, say), which the schema does not say either.
    personalizations = body_schema["properties"]["personalizations"]
    item_schema = personalizations["items"]
    for custom_args in (
        body_schema["properties"]["custom_args"],
        item_schema["properties"]["custom_args"],
    ):
        custom_args["type"] = "object"
        custom_args["additionalProperties"] = {"type": "string"}
    body_schema["properties"]["personalizations"] = {**personalizations, "items": True}
    # OpenAPI 3.1 schemas are JSON Schema 2020-12.
    Draft202012Validator.check_schema(body_schema)
    Draft202012Validator.check_schema(item_schema)
    emails = FormatChecker(formats=("email",))
    return _Schemas(
        body=Draft202012Validator(body_schema, format_checker=emails),
        item=Draft202012Validator(item_schema, format_checker=emails),
        # `_shape` keeps only "contains @" of a string: exact while that is the email check.
        memoize=_shape_is_exact(item_schema)
        and emails.conforms("@", "email")
        and not emails.conforms("x", "email"),
    )


def _error(message: str, field: str | None) -> Error:
    """One entry of SendGrid's `errors` array, with its documentation anchor as `help`."""
    help_url = None
    if field:
        help_url = HELP_BASE + ".".join(p for p in field.split(".") if not p.isdigit())
    return {"message": message, "field": field, "help": help_url}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _schema_error(err: ValidationError, prefix: tuple[str | int, ...] = ()) -> Error:
    """Turn a jsonschema error into SendGrid's shape, without echoing huge instances."""
    path = [str(p) for p in (*prefix, *err.absolute_path)]
    kind, expected, instance = err.validator, err.validator_value, err.instance
    if kind == "required" and isinstance(instance, dict):
        missing = next((p for p in expected if p not in instance), "?")
        path.append(str(missing))
    field = ".".join(path) or None
    label = field or "request body"
    if kind == "type":
        want = "/".join(expected) if isinstance(expected, list) else expected
        message = f"Invalid type. Expected: {want}, given: {_json_type(instance)}."
    elif kind == "required":
        message = f"The {label} field is required."
    elif kind == "format":
        message = "Does not contain a valid address."
    elif kind == "minLength":
        message = f"The {label} value must be a string at least {expected} character(s) long."
    elif kind == "maxLength":
        message = f"The {label} value may not be longer than {expected} characters."
    elif kind == "maxItems":
        message = f"The {label} array may not contain more than {expected} items."
    elif kind == "minItems":
        message = f"The {label} array must contain at least {expected} items."
    elif kind == "uniqueItems":
        message = f"The {label} array may not contain duplicate items."
    elif kind == "maxProperties":
        message = f"The {label} object may not have more than {expected} properties."
    elif kind == "enum":
        message = f"The {label} value must be one of: {', '.join(map(str, expected))}."
    else:
        message = err.message[:300]
    return _error(message, field)


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _size(value: object) -> int:
    """Bytes of a value as compact UTF-8 JSON, the measure of SendGrid's 10,000-byte limits."""
    return len(_COMPACT.encode(value).encode("utf-8"))


def _over(value: dict[str, Any], limit: int) -> int | None:
    """The serialized size of a dict when it exceeds `limit`, else None. A cheap bound first:
    a character takes at most 6 bytes in JSON (\\uXXXX), so short string maps skip encoding."""
    bound = 2
    for k, v in value.items():
        if not isinstance(v, str):
            bound = limit + 1
            break
        bound += 6 * (len(k) + len(v)) + 6
    if bound <= limit:
        return None
    size = _size(value)
    return size if size > limit else None


def _header_errors(headers: object, prefix: str) -> Iterator[Error]:
    if not isinstance(headers, dict):
        return
    for name, value in headers.items():
        if name.lower() in RESERVED_HEADERS:
            yield _error(
                f"The {name} header is reserved by SendGrid and cannot be set in headers.",
                f"{prefix}headers.{name}",
            )
        elif not isinstance(value, str):
            yield _error(
                f"Invalid type. Expected: string, given: {_json_type(value)}.",
                f"{prefix}headers.{name}",
            )


def _send_at_errors(send_at: object, field: str, now: float) -> Iterator[Error]:
    latest = now + MAX_SCHEDULE_AHEAD_S
    if isinstance(send_at, int) and not isinstance(send_at, bool) and send_at > latest:
        yield _error(
            "The send_at parameter may not be scheduled more than 72 hours in advance "
            f"(got {send_at}, latest allowed {int(latest)}).",
            field,
        )


def _from_errors(sender: object, prefix: str) -> Iterator[Error]:
    if isinstance(sender, dict):
        email = sender.get("email")
        if isinstance(email, str) and not email.isascii():
            yield _error(
                "The from email may not contain Unicode (non-ASCII) characters; "
                "use the punycode form of the domain and an ASCII local part.",
                f"{prefix}from.email",
            )


def _rule_errors(body: Json, now: float) -> tuple[list[Error], int]:
    """SendGrid's rules that the OpenAPI schema omits; returns (errors, recipient count).

    Written defensively: it also runs on bodies the schema rejects, so each check skips
    values of the wrong type (the schema reports those).
    """
    errors: list[Error] = []
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(
            _error(
                "The personalizations field is required and must have at least one "
                "personalization.",
                "personalizations",
            )
        )
        personalizations = personalizations if isinstance(personalizations, list) else []
    elif len(personalizations) > MAX_PERSONALIZATIONS:
        errors.append(
            _error(
                f"The personalization block is limited to {MAX_PERSONALIZATIONS} "
                f"personalizations per API request; {len(personalizations)} were given. "
                "Split the send into several requests.",
                "personalizations",
            )
        )

    message_args = body.get("custom_args")
    message_args = message_args if isinstance(message_args, dict) else {}
    size = _over(message_args, MAX_CUSTOM_ARGS_BYTES) if message_args else None
    if size is not None:
        errors.append(
            _error(
                f"The custom_args may not exceed {MAX_CUSTOM_ARGS_BYTES} bytes in total "
                f"(the message-level ones alone are {size}).",
                "custom_args",
            )
        )
        message_args = {}  # reported once here rather than once per personalization

    seen: set[str] = set()
    duplicate_reported = False
    recipients = 0
    every_one_has_subject = bool(personalizations)
    for i, item in enumerate(personalizations):
        if not isinstance(item, dict):
            every_one_has_subject = False
            continue
        prefix = f"personalizations.{i}."
        if not item.get("subject"):
            every_one_has_subject = False
        to = item.get("to")
        if isinstance(to, list) and not to:
            errors.append(
                _error(
                    "The to array is required for all personalization objects, and must have "
                    "at least one email object with a valid email address.",
                    prefix + "to",
                )
            )
        for kind in ("to", "cc", "bcc"):
            people = item.get(kind)
            if not isinstance(people, list):
                continue
            recipients += len(people)
            for j, person in enumerate(people):
                if not isinstance(person, dict):
                    continue
                email, name = person.get("email"), person.get("name")
                if isinstance(email, str):
                    key = email.strip().lower()
                    if key not in seen:
                        seen.add(key)
                    elif not duplicate_reported:
                        duplicate_reported = True
                        errors.append(
                            _error(
                                "Each unique email address in the personalizations array "
                                f"should only be included once. You have included {email} "
                                f"more than once (first duplicate at {prefix}{kind}.{j}).",
                                f"{prefix}{kind}.{j}.email",
                            )
                        )
                if isinstance(name, str) and (";" in name or "," in name):
                    errors.append(
                        _error(
                            "The name may not contain ';' or ','; these separate addresses in "
                            "the header. Remove them or leave the name out.",
                            f"{prefix}{kind}.{j}.name",
                        )
                    )
        substitutions = item.get("substitutions")
        if isinstance(substitutions, dict) and substitutions:
            size = _over(substitutions, MAX_SUBSTITUTIONS_BYTES)
            if size is not None:
                errors.append(
                    _error(
                        f"The substitutions of one personalization may not exceed "
                        f"{MAX_SUBSTITUTIONS_BYTES} bytes; these are {size}.",
                        prefix + "substitutions",
                    )
                )
        args = item.get("custom_args")
        if isinstance(args, dict) and args:
            size = _over({**message_args, **args} if message_args else args, MAX_CUSTOM_ARGS_BYTES)
            if size is not None:
                errors.append(
                    _error(
                        "The custom_args (this personalization's with the message-level ones) "
                        f"may not exceed {MAX_CUSTOM_ARGS_BYTES} bytes in total; "
                        f"these are {size}.",
                        prefix + "custom_args",
                    )
                )
        errors.extend(_send_at_errors(item.get("send_at"), prefix + "send_at", now))
        errors.extend(_header_errors(item.get("headers"), prefix))
        errors.extend(_from_errors(item.get("from"), prefix))

    if recipients > MAX_RECIPIENTS:
        errors.append(
            _error(
                f"There is a limit of {MAX_RECIPIENTS} total recipients (to + cc + bcc) per "
                f"request; this one has {recipients}.",
                "personalizations",
            )
        )

    errors.extend(_from_errors(body.get("from"), ""))
    errors.extend(_header_errors(body.get("headers"), ""))
    errors.extend(_send_at_errors(body.get("send_at"), "send_at", now))

    categories = body.get("categories")
    if isinstance(categories, list):
        if len(categories) > MAX_CATEGORIES:
            errors.append(
                _error(
                    f"A message may have at most {MAX_CATEGORIES} categories; "
                    f"{len(categories)} were given.",
                    "categories",
                )
            )
        for k, category in enumerate(categories):
            if isinstance(category, str) and len(category) > MAX_CATEGORY_CHARS:
                errors.append(
                    _error(
                        f"A category name may not exceed {MAX_CATEGORY_CHARS} characters; "
                        f"this one has {len(category)}.",
                        f"categories.{k}",
                    )
                )

    has_template = bool(body.get("template_id"))
    content = body.get("content")
    if isinstance(content, list) and content:
        types = [c.get("type", "").lower() if isinstance(c, dict) else "" for c in content]
        for mime in ("text/plain", "text/html"):
            if types.count(mime) > 1:
                errors.append(_error(f"If present, {mime} may only be provided once.", "content"))
        if "text/plain" in types and types[0] != "text/plain":
            errors.append(
                _error(
                    "If present, text/plain must be the first content type, before text/html "
                    f"and any other; got {', '.join(types)}.",
                    "content.0.type",
                )
            )
    elif not has_template and content in (None, []):
        errors.append(
            _error(
                "Unless a valid template_id is provided, the content parameter is required: "
                "at least one content block (text/plain and/or text/html).",
                "content",
            )
        )

    if not has_template and not body.get("subject") and not every_one_has_subject:
        errors.append(
            _error(
                "The subject is required, unless a template with a subject is used or every "
                "personalization has a subject.",
                "subject",
            )
        )
    return errors, recipients


def _schema_errors(body: object) -> list[Error]:
    """Validate against the official schema; personalizations one by one, each outline
    (`_shape`) already found valid being skipped: 1,000 alike personalizations cost one."""
    schemas = _schemas()
    errors = [_schema_error(e) for e in schemas.body.iter_errors(body)]
    personalizations = body.get("personalizations") if isinstance(body, dict) else None
    if not isinstance(personalizations, list):
        return errors
    valid_shapes = schemas.valid_shapes
    for i, item in enumerate(personalizations):
        shape = _shape(item) if schemas.memoize else None
        if shape is not None and shape in valid_shapes:
            continue
        found = [_schema_error(e, ("personalizations", i)) for e in schemas.item.iter_errors(item)]
        if found:
            errors.extend(found)
        elif shape is not None:
            if len(valid_shapes) >= 10_000:  # outlines vary per request: keep memory flat
                valid_shapes.clear()
            valid_shapes.add(shape)
    return errors


def _check(body: object, now: float) -> tuple[list[Error], int]:
    """Schema errors plus rule errors; a rule's message wins for a field both report."""
    schema_errors = _schema_errors(body)
    if not isinstance(body, dict):
        return schema_errors, 0
    rule_errors, recipients = _rule_errors(body, now)
    if not schema_errors:
        return rule_errors, recipients
    covered = {e["field"] for e in rule_errors}
    return [e for e in schema_errors if e["field"] not in covered] + rule_errors, recipients


def check_mail_send(body: object, *, now: float | None = None) -> list[Error]:
    """Errors SendGrid would answer 400 with for this Mail Send body ([] when it is valid)."""
    return _check(body, time.time() if now is None else now)[0]


def _message_id() -> str:
    """A random 22-character id, the shape of SendGrid's X-Message-Id (16 bytes, base64url)."""
    return secrets.token_urlsafe(16)


# -- the suppressions API (tsg_suppressions_v3.json) ---------------------------------------

# The global lists under /v3/suppression/ the stand-in serves from seeded entries.
SUPPRESSION_LISTS = ("bounces", "spam_reports", "invalid_emails", "unsubscribes", "blocks")
SUPPRESSIONS_PREFIXES = ("/v3/suppression/", "/v3/asm/")
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_PATH_PARAM = re.compile(r"\{(\w+)\}")


def suppressions_spec_path() -> Path:
    """As `spec_path`, for the suppressions spec ($SENDGRID_SUPPRESSIONS_SPEC overrides)."""
    override = os.environ.get("SENDGRID_SUPPRESSIONS_SPEC")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent / "sendgrid-oai" / "tsg_suppressions_v3.json"


@dataclass(frozen=True)
class _Param:
    name: str  # header names lower-cased
    where: str  # "query", "header" or "path"
    required: bool
    schema: Json
    validator: Draft202012Validator


@dataclass(frozen=True)
class _Operation:
    """One operation of the spec, compiled: what a request to it may carry."""

    operation_id: str
    method: str  # lower case, as in the spec
    template: str
    pattern: re.Pattern[str]
    params: tuple[_Param, ...]
    body: Draft202012Validator | None  # the JSON request body's schema, if it takes one
    answers: dict[int, Draft202012Validator]  # status -> the JSON answer's schema

    def param(self, name: str, where: str) -> _Param | None:
        key = name.lower() if where == "header" else name
        return next((p for p in self.params if p.where == where and p.name == key), None)


@dataclass(frozen=True)
class ApiRequest:
    """One request to the suppressions API, as the stand-in understood it."""

    method: str
    path: str
    operation_id: str
    query: dict[str, list[str]]
    body: Any  # the parsed JSON body, or None


def _path_pattern(template: str) -> re.Pattern[str]:
    parts = []
    for segment in template.split("/"):
        found = _PATH_PARAM.fullmatch(segment)
        parts.append(f"(?P<{found.group(1)}>[^/]+)" if found else re.escape(segment))
    return re.compile("/".join(parts))


@cache
def _operations() -> tuple[_Operation, ...]:
    """Compile every operation of the suppressions spec once, on first use."""
    path = suppressions_spec_path()
    if not path.is_file():
        raise FileNotFoundError(f"SendGrid suppressions OpenAPI spec not found at {path}")
    spec = json.loads(path.read_text(encoding="utf-8"))
    emails = FormatChecker(formats=("email",))

    def compiled(schema: Json) -> Draft202012Validator:
        Draft202012Validator.check_schema(schema)
        return Draft202012Validator(schema, format_checker=emails)

    operations = []
    for template, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in _HTTP_METHODS:
                continue
            declared: dict[tuple[str, str], Json] = {}
            for raw in [*item.get("parameters", []), *operation.get("parameters", [])]:
                param = _inline_refs(raw, spec)  # operation-level ones override the path's
                name = param["name"].lower() if param["in"] == "header" else param["name"]
                declared[(name, param["in"])] = param
            params = tuple(
                _Param(
                    name,
                    where,
                    bool(param.get("required")) or where == "path",
                    param.get("schema", {}),
                    compiled(param.get("schema", {})),
                )
                for (name, where), param in declared.items()
            )
            body = None
            if "requestBody" in operation:
                content = _inline_refs(operation["requestBody"], spec)["content"]
                body = compiled(content["application/json"]["schema"])
            answers = {}
            for code, answer in operation.get("responses", {}).items():
                schema = (
                    _inline_refs(answer, spec)
                    .get("content", {})
                    .get("application/json", {})
                    .get("schema")
                )
                if code.isdigit() and schema is not None:
                    answers[int(code)] = compiled(schema)
            operations.append(
                _Operation(
                    operation["operationId"],
                    method,
                    template,
                    _path_pattern(template),
                    params,
                    body,
                    answers,
                )
            )
    # Literal segments before parameters: .../suppressions/search is not an {email}.
    operations.sort(key=lambda op: op.template.count("{"))
    return tuple(operations)


def _match(method: str, path: str) -> tuple[_Operation, dict[str, str]] | None:
    for operation in _operations():
        if operation.method == method:
            found = operation.pattern.fullmatch(path)
            if found:
                values = {k: urllib.parse.unquote(v) for k, v in found.groupdict().items()}
                return operation, values
    return None


def _operation(method: str, path: str) -> _Operation:
    found = _match(method, path)
    if found is None:
        raise LookupError(f"the suppressions spec has no {method.upper()} {path}")
    return found[0]


def _api_error(message: str, field: str | None) -> Error:
    """One entry of the spec's ErrorResponse `errors` array."""
    return {"field": field, "message": message}


def _typed(value: str, schema: Json) -> Any:
    """A query string value as the JSON type its schema wants (left a string when it is not
    one, so that the schema reports the type)."""
    kind = schema.get("type")
    if kind == "integer" and re.fullmatch(r"[+-]?\d+", value):
        return int(value)
    if kind == "number":
        try:
            return float(value)
        except ValueError:
            return value
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    return value


def _request_errors(
    operation: _Operation,
    path_values: dict[str, str],
    query: dict[str, list[str]],
    headers: Any,
    raw_body: bytes,
) -> tuple[list[Error], dict[str, Any], Any]:
    """What in a request the operation does not allow: (errors, typed query values, body)."""
    errors: list[Error] = []
    values: dict[str, Any] = {}
    where = f"{operation.method.upper()} {operation.template}"
    for name, given in query.items():
        param = operation.param(name, "query")
        if param is None:
            errors.append(_api_error(f"{where} takes no query parameter {name!r}.", name))
            continue
        if param.schema.get("type") == "array":
            value: Any = [_typed(v, param.schema.get("items", {})) for v in given]
        elif len(given) > 1:
            errors.append(_api_error(f"The query parameter {name!r} may be given once.", name))
            continue
        else:
            value = _typed(given[0], param.schema)
        for problem in param.validator.iter_errors(value):
            errors.append(_api_error(f"{name}={given[-1]!r}: {problem.message}.", name))
        values[name] = value
    for param in operation.params:
        if param.where == "query" and param.required and param.name not in query:
            errors.append(_api_error(f"The query parameter {param.name!r} is required.", None))
        elif param.where == "header" and param.required and headers.get(param.name) is None:
            errors.append(_api_error(f"The {param.name} header is required.", None))
        elif param.where == "path":
            for problem in param.validator.iter_errors(path_values.get(param.name)):
                errors.append(_api_error(f"{param.name}: {problem.message}.", param.name))
    body = None
    if operation.body is None:
        if raw_body:
            errors.append(_api_error(f"{where} takes no request body.", None))
        return errors, values, body
    content_type = headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if not raw_body:
        errors.append(_api_error(f"{where} needs a JSON request body.", None))
    elif content_type != "application/json":
        errors.append(_api_error(f"Content-Type {content_type!r} is not application/json.", None))
    else:
        try:
            body = json.loads(raw_body)
        except ValueError as exc:
            errors.append(_api_error(f"The body is not valid JSON ({exc}).", None))
        else:
            for problem in operation.body.iter_errors(body):
                field = ".".join(str(p) for p in problem.absolute_path) or None
                errors.append(_api_error(f"{field or 'body'}: {problem.message}.", field))
    return errors, values, body


def _email_matches(email: str, pattern: str) -> bool:
    """The spec's `email` filter: a prefix, with `%` as a wildcard."""
    regex = ".*".join(re.escape(part) for part in pattern.split("%"))
    return re.match(regex, email, re.IGNORECASE) is not None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, standin: SendGridStandIn) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.standin = standin

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout) leaves a broken pipe: not worth a traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _guarded(self, handle: Callable[[_Handler], None]) -> None:
        try:
            handle(self)
        except (ConnectionError, TimeoutError):
            raise  # the client went away; `_Server.handle_error` stays quiet about it
        except Exception as exc:  # a bug here: answer 500 saying so, rather than hang up
            traceback.print_exc()
            message = f"SendGridStandIn failed: {exc!r}"
            self.server.standin._respond(
                self, 500, {"errors": [{"field": None, "message": message}]}
            )
            self.close_connection = True

    def do_POST(self) -> None:
        self._guarded(self.server.standin._handle_post)

    def _not_found(self) -> None:
        self.server.standin._drain(self)
        self.server.standin._respond(self, 404, NOT_FOUND_ERROR)

    def do_GET(self) -> None:
        self._guarded(self.server.standin._handle_get)

    def do_PUT(self) -> None:
        self._guarded(lambda handler: handler.server.standin._handle_api(handler, "put"))

    def do_PATCH(self) -> None:
        self._guarded(lambda handler: handler.server.standin._handle_api(handler, "patch"))

    def do_DELETE(self) -> None:
        self._guarded(lambda handler: handler.server.standin._handle_api(handler, "delete"))

    do_HEAD = do_OPTIONS = _not_found

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test output is no place for an access log."""


class SendGridStandIn:
    """A local stand-in for POST /v3/mail/send and the suppression lists that checks each
    request as SendGrid would."""

    def __init__(
        self,
        api_key: str = "SG.test-key",
        *,
        record: bool = True,
        max_request_bytes: int = 30 * 1024 * 1024,
    ) -> None:
        self.api_key = api_key
        self.record = record
        self.max_request_bytes = max_request_bytes
        self.accepted: list[Json] = []
        self.accepted_count = 0
        self.recipients_accepted = 0
        self.sandboxed: list[Json] = []
        self.sandboxed_count = 0
        self.rejected: list[tuple[int, Json]] = []
        self._lock = threading.Lock()
        self._failures: deque[tuple[int, dict[str, str] | None, Json | None]] = deque()
        self._delays: deque[float] = deque()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._auth = f"Bearer {api_key}".encode()
        self.scopes = ["mail.send", "scopes.read"]  # what GET /v3/scopes answers
        # The suppressions API: seeded lists, groups by id, and what was asked of it.
        self.suppressions: dict[str, list[Json]] = {name: [] for name in SUPPRESSION_LISTS}
        self.groups: dict[str, list[str]] = {}
        self.group_posts: list[tuple[str, list[str]]] = []  # (group id, recipient_emails)
        self.api_requests: list[ApiRequest] = []
        self.violations: list[str] = []  # requests the spec does not allow
        self.default_page_size = 500  # without `limit` ("the default page size is used")
        _schemas()  # compile now, so the first request is not the slow one

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> SendGridStandIn:
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="sendgrid-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping.set()  # wakes handlers sleeping in delay_next
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def url(self) -> str:
        """Base URL to pass as `host=` to `sendgrid.SendGridAPIClient`."""
        if self._server is None:
            raise RuntimeError("SendGridStandIn is not running; use it as a context manager")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- test controls -----------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        headers: dict[str, str] | None = None,
        body: Json | None = None,
    ) -> None:
        """Answer the next `count` authorized requests with `status` (to test retries).

        429 gets SendGrid's body and X-RateLimit-Limit/Remaining/Reset headers (Reset = now
        + 1 s, computed when answering); given `headers` are added over those defaults.
        5xx gets `{"errors":[{"field":null,"message":"internal error"}]}` unless `body` is given.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"fail_next takes an error status (400-599), not {status}")
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._failures.extend([(status, headers, body)] * count)

    def delay_next(self, seconds: float, count: int = 1) -> None:
        """Sleep `seconds` before answering each of the next `count` requests (timeouts)."""
        if seconds < 0 or count < 1:
            raise ValueError("seconds must be >= 0 and count >= 1")
        with self._lock:
            self._delays.extend([seconds] * count)

    def recipients(self) -> list[str]:
        """Every `to` address of the accepted requests, in the order they were sent."""
        if not self.record:
            raise RuntimeError("recipients() needs record=True; use recipients_accepted")
        with self._lock:
            bodies = list(self.accepted)
        return [
            person["email"]
            for body in bodies
            for item in body["personalizations"]
            for person in item["to"]
        ]

    def seed(self, list_name: str, entries: Iterable[Json]) -> None:
        """Add entries to GET /v3/suppression/<list_name>, in the order given; each must be
        what the spec says that list answers (e.g. {"email", "created", "reason"})."""
        if list_name not in SUPPRESSION_LISTS:
            raise ValueError(f"no suppression list {list_name!r} (one of {SUPPRESSION_LISTS})")
        items = [dict(entry) for entry in entries]
        answer = _operation("get", f"/v3/suppression/{list_name}").answers[200]
        problem = next(answer.iter_errors(items), None)
        if problem is not None:
            where = "/".join(str(p) for p in problem.absolute_path)
            raise ValueError(
                f"not an answer of /v3/suppression/{list_name}: {where}: {problem.message}"
            )
        with self._lock:
            self.suppressions[list_name].extend(items)

    def seed_group(self, group_id: int | str, emails: Iterable[str]) -> None:
        """Put addresses in an unsubscribe group's suppressions (created when first named)."""
        with self._lock:
            self._add_to_group(str(group_id), list(emails))

    def group(self, group_id: int | str) -> list[str]:
        """An unsubscribe group's suppressions, seeded and posted."""
        with self._lock:
            return list(self.groups.get(str(group_id), []))

    def requests_to(self, operation_id: str) -> list[ApiRequest]:
        """The suppressions API requests made to one operation (the spec's operationId)."""
        with self._lock:
            return [r for r in self.api_requests if r.operation_id == operation_id]

    def assert_no_violations(self) -> None:
        """Fail the test if any request broke the suppressions spec (each was answered 400)."""
        with self._lock:
            found = list(self.violations)
        if found:
            raise AssertionError(
                "requests the SendGrid suppressions spec does not allow:\n" + "\n".join(found)
            )

    # -- request handling ----------------------------------------------------------------

    def _admitted(self, handler: _Handler, path: str) -> bool:
        """The right path (else 404) with the right key (else 401), as SendGrid checks."""
        if handler.path.split("?", 1)[0].rstrip("/") != path:
            handler._not_found()
            return False
        authorization = handler.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(authorization, self._auth):
            self._drain(handler)
            self._reject(handler, 401, AUTH_ERROR)
            return False
        return True

    def _handle_get(self, handler: _Handler) -> None:
        if handler.path.split("?", 1)[0].rstrip("/") != SCOPES_PATH:
            self._handle_api(handler, "get")
        elif self._admitted(handler, SCOPES_PATH):
            self._respond(handler, 200, {"scopes": list(self.scopes)})

    def _handle_post(self, handler: _Handler) -> None:
        if handler.path.split("?", 1)[0].rstrip("/") != MAIL_SEND_PATH:
            self._handle_api(handler, "post")
            return
        if not self._admitted(handler, MAIL_SEND_PATH):
            return
        raw = self._body(handler)
        if raw is None or self._injected(handler):
            return

        encoding = handler.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding == "gzip":
            try:
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                raw = inflater.decompress(raw, self.max_request_bytes + 1)
            except zlib.error as exc:
                self._reject(handler, 400, {"errors": [_error(f"Bad gzip body: {exc}", None)]})
                return
            if len(raw) > self.max_request_bytes:
                self._reject(handler, 413, TOO_LARGE_ERROR)
                return
        elif encoding != "identity":
            self._reject(
                handler,
                415,
                {"errors": [_error(f"Unsupported Content-Encoding {encoding!r}.", None)]},
            )
            return

        try:
            body = json.loads(raw)
        except ValueError as exc:
            message = f"Bad Request: the body is not valid JSON ({exc})."
            self._reject(handler, 400, {"errors": [_error(message, None)]})
            return

        errors, recipients = _check(body, time.time())
        if errors:
            self._reject(handler, 400, {"errors": errors})
            return

        sandbox = body.get("mail_settings", {}).get("sandbox_mode", {}).get("enable") is True
        with self._lock:
            if sandbox:
                self.sandboxed_count += 1
                if self.record:
                    self.sandboxed.append(body)
            else:
                self.accepted_count += 1
                self.recipients_accepted += recipients
                if self.record:
                    self.accepted.append(body)
        if sandbox:  # SendGrid answers 200 in sandbox mode: valid, but not queued
            self._respond(handler, 200, None)
        else:
            self._respond(handler, 202, None, {"X-Message-Id": _message_id()})

    def _handle_api(self, handler: _Handler, method: str) -> None:
        """A request to the suppressions API: found in the spec (else 404), authorized (else
        401), allowed by its operation (else 400, recorded in `violations`), then served."""
        path, _, raw_query = handler.path.partition("?")
        path = path.rstrip("/")
        found = _match(method, path) if path.startswith(SUPPRESSIONS_PREFIXES) else None
        if found is None:
            handler._not_found()
            return
        operation, path_values = found
        authorization = handler.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(authorization, self._auth):
            self._drain(handler)
            self._reject(handler, 401, AUTH_ERROR)
            return
        raw = self._body(handler) if handler.headers.get("Content-Length") is not None else b""
        if raw is None or self._injected(handler):
            return

        query = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
        errors, values, body = _request_errors(operation, path_values, query, handler.headers, raw)
        with self._lock:
            self.api_requests.append(
                ApiRequest(method.upper(), path, operation.operation_id, query, body)
            )
        if errors:
            with self._lock:
                self.violations.append(
                    f"{method.upper()} {handler.path}: " + " ".join(e["message"] for e in errors)
                )
            self._reject(handler, 400, {"errors": errors})
            return
        serve = {
            "ListSuppressionBounces": self._serve_list,
            "ListSpamReport": self._serve_list,
            "ListInvalidEmail": self._serve_list,
            "ListGlobalSuppression": self._serve_list,
            "ListSuppressionBlock": self._serve_list,
            "ListSuppressionFromAsmGroup": self._serve_group,
            "AddSuppressionToAsmGroup": self._serve_group_add,
        }.get(operation.operation_id)
        if serve is None:
            message = (
                f"{operation.operation_id} ({method.upper()} {operation.template}) is in the "
                "spec but the stand-in does not serve it"
            )
            with self._lock:
                self.violations.append(message)
            self._respond(handler, 501, {"errors": [_api_error(message, None)]})
            return
        status, payload = serve(operation, path_values, values, body)
        schema = operation.answers.get(status)
        problem = next(schema.iter_errors(payload), None) if schema is not None else None
        if problem is not None:  # a bug in the stand-in, or in what a test seeded
            raise AssertionError(f"the stand-in's answer breaks the spec: {problem.message}")
        self._respond(handler, status, payload)

    def _serve_list(
        self, operation: _Operation, path_values: dict[str, str], values: dict[str, Any], body: Any
    ) -> tuple[int, Any]:
        """A page of a global list: start_time/end_time (inclusive) on `created`, `email` as
        a prefix, then `offset` entries skipped and at most `limit` given."""
        with self._lock:
            entries = list(self.suppressions[operation.template.rsplit("/", 1)[1]])
        start, end, pattern = values.get("start_time"), values.get("end_time"), values.get("email")
        if start is not None:
            entries = [e for e in entries if e.get("created", 0) >= start]
        if end is not None:
            entries = [e for e in entries if e.get("created", 0) <= end]
        if pattern:
            entries = [e for e in entries if _email_matches(e.get("email", ""), pattern)]
        offset = values.get("offset", 0)
        limit = values.get("limit", self.default_page_size)
        return 200, entries[offset : offset + limit]

    def _serve_group(
        self, operation: _Operation, path_values: dict[str, str], values: dict[str, Any], body: Any
    ) -> tuple[int, Any]:
        return 200, self.group(path_values["group_id"])

    def _serve_group_add(
        self, operation: _Operation, path_values: dict[str, str], values: dict[str, Any], body: Any
    ) -> tuple[int, Any]:
        emails = list(body["recipient_emails"])
        with self._lock:
            self._add_to_group(path_values["group_id"], emails)
            self.group_posts.append((path_values["group_id"], emails))
        return 201, {"recipient_emails": emails}

    def _add_to_group(self, group_id: str, emails: list[str]) -> None:
        """Under the lock: each address once per group, whatever its case."""
        members = self.groups.setdefault(group_id, [])
        known = {m.lower() for m in members}
        for email in emails:
            if email.lower() not in known:
                known.add(email.lower())
                members.append(email)

    def _body(self, handler: BaseHTTPRequestHandler) -> bytes | None:
        """The request body, or None when the request was answered already (bad or too
        large a Content-Length)."""
        length = self._content_length(handler)
        if length is None:
            return None
        if length > self.max_request_bytes:
            self._drain(handler, length)
            self._reject(handler, 413, TOO_LARGE_ERROR)
            return None
        return handler.rfile.read(length)

    def _injected(self, handler: BaseHTTPRequestHandler) -> bool:
        """Apply the next injected delay or failure; True when the request is answered."""
        with self._lock:
            delay = self._delays.popleft() if self._delays else None
            failure = self._failures.popleft() if self._failures else None
        if delay and self._stopping.wait(delay):
            handler.close_connection = True
            return True
        if failure is not None:
            self._respond_failure(handler, *failure)
            return True
        return False

    def _content_length(self, handler: _Handler) -> int | None:
        """The declared body size, or None after answering a request that lacks a usable one."""
        value = handler.headers.get("Content-Length")
        try:
            length = int(value) if value is not None else -1
        except ValueError:
            length = -1
        if length < 0:
            handler.close_connection = True
            self._reject(
                handler,
                411 if value is None else 400,
                {"errors": [_error("A valid Content-Length header is required.", None)]},
            )
            return None
        return length

    def _drain(self, handler: _Handler, length: int | None = None) -> None:
        """Read and discard the body in chunks, so the client can finish sending and read
        the answer (closing early would give it a connection reset instead of the status)."""
        if length is None:
            try:
                length = int(handler.headers.get("Content-Length", "0"))
            except ValueError:
                length = 0
        remaining = length
        while remaining > 0:
            chunk = handler.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                break
            remaining -= len(chunk)

    def _reject(self, handler: _Handler, status: int, body: Json) -> None:
        with self._lock:
            self.rejected.append((status, copy.deepcopy(body)))
        self._respond(handler, status, body)

    def _respond_failure(
        self,
        handler: _Handler,
        status: int,
        headers: dict[str, str] | None,
        body: Json | None,
    ) -> None:
        out_headers: dict[str, str] = {}
        if status == 429:
            default_body = RATE_LIMIT_ERROR
            out_headers = {
                "X-RateLimit-Limit": "600",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(time.time()) + 1),
            }
        elif status >= 500:
            default_body = SERVER_ERROR
        else:
            try:  # `status in HTTPStatus` raises TypeError on Python 3.11
                phrase = HTTPStatus(status).phrase.lower()
            except ValueError:
                phrase = "error"
            default_body = {"errors": [{"field": None, "message": phrase}]}
        out_headers.update(headers or {})
        self._respond(handler, status, default_body if body is None else body, out_headers)

    def _respond(
        self,
        handler: _Handler,
        status: int,
        body: Json | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        try:
            handler.send_response(status)
            if body is not None:
                handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            if payload and handler.command != "HEAD":
                handler.wfile.write(payload)
            handler.wfile.flush()
        except (ConnectionError, TimeoutError):
            handler.close_connection = True  # the client gave up (e.g. its timeout fired)


def main() -> None:
    """Serve in a process of its own (benchmarks: a provider does not share our interpreter).

    `python tests/sendgrid_standin.py [API_KEY]` prints its base URL on the first line, then
    serves until its standard input closes or it is terminated.
    """
    api_key = sys.argv[1] if len(sys.argv) > 1 else "SG.test-key"
    with SendGridStandIn(api_key=api_key, record=False) as standin:
        print(standin.url, flush=True)
        sys.stdin.read()  # returns when the parent closes the pipe or exits


if __name__ == "__main__":
    main()
