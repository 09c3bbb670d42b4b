"""What a pre-flight check reports: a finding, its severity, and where it points."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    message: str
    file: str | None = None
    line: int | None = None

    @property
    def where(self) -> str:
        if not self.file:
            return ""
        return f"{self.file}:{self.line}" if self.line else self.file

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "severity": str(self.severity)}


def ordered(*groups: Iterable[Finding]) -> list[Finding]:
    """Findings from several checks as one list: errors first, each finding once (the same
    problem can be found twice, e.g. an http image by the image rules and in the HTML)."""
    return sorted(
        dict.fromkeys(f for group in groups for f in group),
        key=lambda f: f.severity != Severity.ERROR,
    )
