"""The `newsletter` command: parse, call the services, present. No logic of its own."""

from __future__ import annotations

import gc
import os
import sys

from rich.text import Text

from newsletter.cli import (  # noqa: F401  (they register)
    archive,
    content,
    inbound,
    report,
    scaffold,
    schedule,
    send,
    sends,
    serve,
    stats,
    subscribers,
    suppressions,
)
from newsletter.cli.app import PIPE_CLOSED, err, options, print_json, root_command
from newsletter.errors import ExitStatus, InputError, NewsletterError
from newsletter.infra.redaction import redact


def run(argv: list[str]) -> int:
    """Run one command; our errors become one line and an exit status (tracebacks need --debug).

    Usage errors are typer's own (exit 2), so the whole CLI speaks one set of exit codes.
    """
    try:
        root_command().main(args=argv, prog_name="newsletter")
    except SystemExit as exc:
        if type(sys.stdout).__name__ == "PacifyFlushWrapper":
            return PIPE_CLOSED  # click's answer to a closed pipe is 1, our "check errors"
        return exc.code if isinstance(exc.code, int) else int(bool(exc.code))
    except NewsletterError as exc:
        if options.debug:
            raise
        err.print(Text.assemble(("error: ", "bold red"), redact(str(exc))))
        if "--json" in argv:  # a script reading stdout gets the error as JSON too
            details = exc.to_dict() if isinstance(exc, InputError) else {"message": str(exc)}
            print_json({"ok": False, "error": details, "exit_status": int(exc.exit_status)})
        return int(exc.exit_status)
    except BrokenPipeError:
        # The reader went away (`newsletter snippets list | head -1`): not an error of ours.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (silence the flush at exit)
        return PIPE_CLOSED
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as exc:
        if options.debug:
            raise
        message = redact(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug)")
        err.print(message, markup=False)
        return int(ExitStatus.INTERNAL_ERROR)
    return int(ExitStatus.OK)


def main() -> None:
    status = run(sys.argv[1:])
    # On its way out Python searches every object left for reference cycles (pydantic's
    # schemas, typer's commands, the templates): about 60 ms after `check`, for memory the
    # process is handing back anyway. Frozen objects are skipped; the streams are still
    # flushed and atexit handlers still run. Here only: tests call run() in one process.
    gc.freeze()
    sys.exit(status)
