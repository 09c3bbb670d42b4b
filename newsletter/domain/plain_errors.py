"""Pydantic's validation errors in plain words, for people editing front matter and
settings by hand ("invalid character in year" means nothing to an editor)."""

from __future__ import annotations

import re
from typing import Any

_DATE_REASONS = {
    "month value is outside expected range": "there is no such month",
    "day value is outside expected range": "that day does not exist in that month",
    "input is too short": "it is incomplete",
    "invalid character in year": "the year is not four digits",
    "invalid character in month": "the month is not two digits",
    "invalid character in day": "the day is not two digits",
    "input is too long": "it has extra characters",
}


def plain_message(error: dict[str, Any]) -> str:
    """One error of `ValidationError.errors()`, as an instruction."""
    kind = str(error.get("type", ""))
    got = error.get("input")
    shown = f" (got {got!r})" if got is not None and not isinstance(got, dict | list) else ""
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    if kind.startswith(("date_", "datetime_")):
        digits = isinstance(got, str) and re.fullmatch(r"[\d-]+", got) is not None
        reason = next((r for key, r in _DATE_REASONS.items() if key in message), "")
        reason = reason if digits else ""
        because = f": {reason}" if reason else ""
        return f"{got!r} is not a date{because}; write it as YYYY-MM-DD, e.g. 2027-01-07"
    if kind.startswith("int_"):
        return f"must be a whole number{shown}"
    if kind in ("float_parsing", "float_type"):
        return f"must be a number{shown}"
    if kind in ("bool_parsing", "bool_type"):
        return f"must be true or false{shown}"
    if kind == "list_type":
        return f"must be a list, such as [a, b] or one '- item' per line{shown}"
    if kind == "string_type":
        return f"must be text{shown}; put it in quotes if it looks like a number or a date"
    if kind == "literal_error":
        expected = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        return f"must be one of: {', '.join(expected)}{shown}"
    if kind in ("dict_type", "model_type"):
        return f"must be a table of keys and values{shown}"
    return f"{message}{shown}"
