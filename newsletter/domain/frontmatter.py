"""Front matter (YAML between `---` lines) with the line of every key, for precise errors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from newsletter.domain.personalize import reject_reserved
from newsletter.domain.plain_errors import plain_message
from newsletter.errors import InputError

FENCE = "---"
M = TypeVar("M", bound=BaseModel)


class _Loader(yaml.SafeLoader):
    """SafeLoader without implicit timestamps: `2026-13-40` stays a string, so the model
    rejects it with the field's line instead of PyYAML failing without one."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class FrontMatter:
    data: dict[str, Any]
    lines: dict[tuple[str | int, ...], int]  # path of keys and indices -> 1-based file line
    body: str
    body_line: int  # line of the body's first line in the file
    file: str

    def line_of(self, *path: str | int) -> int:
        """Line of the deepest known part of `path`, e.g. ("sources", 0, "url")."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1


def _node_lines(
    node: yaml.Node,
    prefix: tuple[str | int, ...],
    out: dict[tuple[str | int, ...], int],
    seen: set[int],
    file: str,
) -> None:
    """Record the line of every key and item. A node met twice is a YAML alias: refused,
    since aliases can nest into exponential (or endless) structures."""
    if id(node) in seen:
        raise InputError(
            "YAML anchors and aliases are not allowed in front matter",
            file,
            node.start_mark.line + 2,
        )
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*prefix, str(key_node.value))
            out.setdefault(path, key_node.start_mark.line + 2)
            _node_lines(value_node, path, out, seen, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            out[(*prefix, index)] = item.start_mark.line + 2
            _node_lines(item, (*prefix, index), out, seen, file)


def parse_front_matter(text: str, file: str) -> FrontMatter:
    """Split and parse; every problem is an InputError naming `file` and the line."""
    if "\x00" in text:
        raise InputError("file contains NUL bytes; is it a binary file?", file, 1)
    lines = text.split("\n")
    if not lines or lines[0].strip() != FENCE:
        raise InputError("must start with a '---' line opening the front matter", file, 1)
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == FENCE), None)
    if end is None:
        raise InputError("front matter is not closed by a '---' line", file, 1)
    yaml_text = "\n".join(lines[1:end])
    try:
        node = yaml.compose(yaml_text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        # An unclosed construct is noticed lines later; point at where it started.
        mark = exc.context_mark or exc.problem_mark
        line = mark.line + 2 if mark else 1
        found = (
            f" (noticed on line {exc.problem_mark.line + 2})"
            if exc.context_mark
            and exc.problem_mark
            and exc.problem_mark.line != exc.context_mark.line
            else ""
        )
        raise InputError(f"invalid YAML: {exc.problem or exc.context}{found}", file, line) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", file, 1) from None
    if node is None:
        node = yaml.MappingNode("tag:yaml.org,2002:map", [])
    if not isinstance(node, yaml.MappingNode):
        raise InputError("front matter must be a mapping of 'key: value' lines", file, 2)
    positions: dict[tuple[str | int, ...], int] = {}
    _node_lines(node, (), positions, set(), file)  # before constructing: rejects aliases
    data = _Loader(yaml_text).get_single_data() or {}
    seen: dict[str, int] = {}
    for key_node, _ in node.value:
        key, line = str(key_node.value), key_node.start_mark.line + 2
        if key in seen:
            raise InputError(f"duplicate key '{key}' (first on line {seen[key]})", file, line)
        seen[key] = line
    return FrontMatter(
        data=data,
        lines=positions,
        body="\n".join(lines[end + 1 :]),
        body_line=end + 2,
        file=file,
    )


def validate(model: type[M], front: FrontMatter, **extra: Any) -> M:
    """Validate the front matter against `model`, turning the first error into one line."""
    try:
        return model.model_validate({**front.data, **extra})
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        where = ".".join(str(p) for p in loc) or "front matter"
        if error["type"] == "missing":
            allowed = ", ".join(model.model_fields)
            line = front.line_of(*loc[:-1]) if len(loc) > 1 else 1
            raise InputError(
                f"missing required field '{where}' (fields: {allowed})", front.file, line
            ) from None
        if error["type"] == "extra_forbidden":
            allowed = ", ".join(model.model_fields)
            raise InputError(
                f"unknown field '{where}' (allowed: {allowed})", front.file, front.line_of(*loc)
            ) from None
        raise InputError(
            f"{where}: {plain_message(dict(error))}", front.file, front.line_of(*loc)
        ) from None


NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def parse_document(
    model: type[M], kind: str, name: str, text: str, file: str
) -> tuple[FrontMatter, M]:
    """A content file (snippet or issue): its name, front matter and reserved characters."""
    if not NAME_PATTERN.match(name):
        raise InputError(
            f"{kind} file name '{name}' must be lowercase letters, digits and dashes", file
        )
    front = parse_front_matter(text, file)
    meta = validate(model, front)
    reject_reserved(text, file)
    return front, meta
