"""MJML validation that mjml-python does not do: unknown `mj-*` tags, disallowed attributes.

The allowed tags, attributes and children are data (`mjml_components.json`, derived from the
MJML component sources). Templates are checked for tags and attributes before rendering, with
Jinja blocks blanked out so that line numbers stay those of the template file. Nesting is
checked on the rendered MJML only: a tag opened in both branches of a Jinja `if` would
otherwise look nested in itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_TAG = re.compile(r"<(/?)(mjml|mj-[A-Za-z0-9-]*)((?:\"[^\"]*\"|'[^']*'|[^'\">])*)>", re.I)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_ATTR = re.compile(r"([^\s=/>\"']+)(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?")


@dataclass(frozen=True)
class MjmlProblem:
    line: int
    message: str


@dataclass(frozen=True)
class MjmlSchema:
    components: dict[str, frozenset[str]]
    children: dict[str, frozenset[str]]  # only tags whose children MJML restricts
    any_attributes: frozenset[str]
    global_attributes: frozenset[str]
    unsupported: dict[str, str]
    unsupported_attributes: dict[str, dict[str, str]]


@cache
def schema() -> MjmlSchema:
    raw = json.loads(
        resources.files("newsletter.domain").joinpath("mjml_components.json").read_text("utf-8")
    )
    components = {
        name: frozenset(spec.get("attributes", [])) for name, spec in raw["components"].items()
    }
    return MjmlSchema(
        components=components,
        children={
            name: frozenset(spec["children"])
            for name, spec in raw["components"].items()
            if "children" in spec and not spec.get("any_component_children")
        },
        any_attributes=frozenset(
            name for name, spec in raw["components"].items() if spec.get("any_attributes")
        ),
        global_attributes=frozenset(raw.get("global_attributes", [])),
        unsupported=dict(raw.get("unsupported", {})),
        unsupported_attributes=dict(raw.get("unsupported_attributes", {})),
    )


def _blank(pattern: re.Pattern[str], source: str) -> str:
    return pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), source)


def blank_jinja(source: str) -> str:
    """Replace Jinja syntax with spaces, keeping newlines, so positions stay true."""
    return _blank(_JINJA, source)


def validate_mjml(source: str, *, template: bool = False) -> list[MjmlProblem]:
    """Problems in MJML source (or a Jinja template of MJML when `template` is true)."""
    rules = schema()
    text = _blank(_COMMENT, blank_jinja(source) if template else source)
    problems: list[MjmlProblem] = []
    in_attributes = 0  # inside <mj-attributes>, tags name defaults, not components
    open_tags: list[str] = []  # a template may start mid-document: no parent, no check
    for match in _TAG.finditer(text):
        closing, name, rest = match.group(1), match.group(2), match.group(3)
        line = text.count("\n", 0, match.start()) + 1
        if closing:
            if name == "mj-attributes":
                in_attributes = max(0, in_attributes - 1)
            if name in open_tags:
                while open_tags.pop() != name:
                    pass
            continue
        parent = open_tags[-1] if open_tags and not template else None
        self_closing = rest.rstrip().endswith("/")
        if not self_closing:
            open_tags.append(name)
        if name != name.lower():
            problems.append(MjmlProblem(line, f"unknown MJML tag <{name}> (tags are lower case)"))
            continue
        if name in rules.unsupported:
            problems.append(
                MjmlProblem(line, f"<{name}> is not supported: {rules.unsupported[name]}")
            )
            continue
        if name not in rules.components:
            problems.append(MjmlProblem(line, f"unknown MJML tag <{name}>"))
            continue
        allowed_here = rules.children.get(parent or "")
        if allowed_here is not None and name not in allowed_here and name != "mj-include":
            problems.append(MjmlProblem(line, f"<{name}> is not allowed inside <{parent}>"))
        if name == "mj-attributes" and not self_closing:
            in_attributes += 1
        if name in rules.any_attributes or (in_attributes and name == "mj-class"):
            continue
        allowed = rules.components[name] | rules.global_attributes
        if in_attributes:
            allowed = allowed - {"mj-class"}
        for attr in _ATTR.finditer(rest.rstrip("/")):
            key = attr.group(1)
            reason = rules.unsupported_attributes.get(name, {}).get(key)
            if reason:
                attr_line = line + text.count("\n", match.start(), match.start(3) + attr.start())
                problems.append(
                    MjmlProblem(
                        attr_line, f"attribute '{key}' on <{name}> is not supported: {reason}"
                    )
                )
            elif key not in allowed:
                attr_line = line + text.count("\n", match.start(), match.start(3) + attr.start())
                problems.append(
                    MjmlProblem(attr_line, f"attribute '{key}' is not allowed on <{name}>")
                )
    return problems
