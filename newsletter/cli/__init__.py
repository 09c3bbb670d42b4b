"""The `newsletter` command: parse, call the services, present. No logic of its own."""

from __future__ import annotations

import sys

from rich.text import Text

from newsletter.cli import content, serve, subscribers  # noqa: F401  (they register commands)
from newsletter.cli.app import app, err, options
from newsletter.errors import ExitStatus, NewsletterError


def run(argv: list[str]) -> int:
    """Run one command; our errors become one line and an exit status (tracebacks need --debug).

    Usage errors are typer's own (exit 2), so the whole CLI speaks one set of exit codes.
    """
    try:
        app(args=argv, prog_name="newsletter")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else int(bool(exc.code))
    except NewsletterError as exc:
        if options.debug:
            raise
        err.print(Text.assemble(("error: ", "bold red"), str(exc)))
        return int(exc.exit_status)
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as exc:
        if options.debug:
            raise
        err.print(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug)", markup=False)
        return int(ExitStatus.INTERNAL_ERROR)
    return int(ExitStatus.OK)


def main() -> None:
    sys.exit(run(sys.argv[1:]))
