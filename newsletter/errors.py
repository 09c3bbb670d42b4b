"""Errors every layer may raise, and the exit statuses the CLI maps them to."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """What a `newsletter` process tells its caller; scripts rely on these."""

    OK = 0
    CHECKS_FAILED = 1  # pre-flight checks found errors
    INPUT_ERROR = 2  # bad usage, file, setting or template
    SEND_INCOMPLETE = 3  # a send stopped before every recipient was handled (paused, cancelled)
    UNAVAILABLE = 69  # a database, server or provider cannot be reached
    TEMPFAIL = 75  # `inbound` only: the mail system should try again later (sysexits.h)
    INTERNAL_ERROR = 70  # a bug: rerun with --debug for the traceback


class NewsletterError(Exception):
    """Base of the errors the CLI turns into one line and an exit status."""

    exit_status = ExitStatus.INTERNAL_ERROR


class InputError(NewsletterError):
    """Something the user gave us is wrong; names the file and line where it can."""

    exit_status = ExitStatus.INPUT_ERROR

    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        super().__init__(str(self))

    @property
    def where(self) -> str | None:
        if self.file is None:
            return None
        return f"{self.file}:{self.line}" if self.line else self.file

    def __str__(self) -> str:
        where = self.where
        return f"{where}: {self.message}" if where else self.message

    def to_dict(self) -> dict[str, object]:
        return {"message": self.message, "file": self.file, "line": self.line}


class ConfigError(InputError):
    """A missing or invalid setting, named with where it came from."""
