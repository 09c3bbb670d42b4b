"""Front matter (YAML between `---` lines) with the line of every key, for precise errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from newsletter.errors import InputError

FENCE = "---"
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class FrontMatter:
    data: dict[str, Any]
    key_lines: dict[str, int]  # 1-based line of each key in the file
    item_lines: dict[str, list[int]]  # for list values: the line of each item
    body: str
    body_line: int  # line of the body's first line in the file
    file: str

    def line_of(self, key: str | None, index: int | None = None) -> int:
        if key is None:
            return 1
        if index is not None and index < len(self.item_lines.get(key, [])):
            return self.item_lines[key][index]
        return self.key_lines.get(key, 1)


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
        node = yaml.compose(yaml_text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(yaml_text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 2 if mark else 1
        raise InputError(f"invalid YAML: {exc.problem or exc.context}", file, line) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", file, 1) from None
    if node is None:
        node, data = yaml.MappingNode("tag:yaml.org,2002:map", []), {}
    if not isinstance(node, yaml.MappingNode) or not isinstance(data, dict):
        raise InputError("front matter must be a mapping of 'key: value' lines", file, 2)
    key_lines: dict[str, int] = {}
    item_lines: dict[str, list[int]] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        line = key_node.start_mark.line + 2
        if key in key_lines:
            raise InputError(f"duplicate key '{key}' (first on line {key_lines[key]})", file, line)
        key_lines[key] = line
        if isinstance(value_node, yaml.SequenceNode):
            item_lines[key] = [item.start_mark.line + 2 for item in value_node.value]
    return FrontMatter(
        data=data,
        key_lines=key_lines,
        item_lines=item_lines,
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
        loc = error["loc"]
        key = str(loc[0]) if loc else None
        index = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
        where = ".".join(str(p) for p in loc) or "front matter"
        if error["type"] == "missing":
            allowed = ", ".join(model.model_fields)
            raise InputError(
                f"missing required field '{where}' (fields: {allowed})", front.file, 1
            ) from None
        if error["type"] == "extra_forbidden":
            allowed = ", ".join(model.model_fields)
            raise InputError(
                f"unknown field '{where}' (allowed: {allowed})", front.file, front.line_of(key)
            ) from None
        message = error["msg"].removeprefix("Value error, ")
        raise InputError(f"{where}: {message}", front.file, front.line_of(key, index)) from None
