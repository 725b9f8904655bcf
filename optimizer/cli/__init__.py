"""The ``contactplan`` command line.

Every command prints a short summary; bad input ends with a one-line
``error: <field>: <what was expected>`` on stderr and exit status 2, and
nothing is written.
"""

from __future__ import annotations

import os
import sys

import typer

from formulations.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="contactplan: optimal weekly customer contact plans.")

# command modules register themselves on `app` when imported
from optimizer.cli import weekly  # noqa: E402,F401
from optimizer.cli import dp  # noqa: E402,F401
from optimizer.cli import bench  # noqa: E402,F401
from optimizer.cli import frontier  # noqa: E402,F401
from optimizer.cli import report  # noqa: E402,F401
from optimizer.cli import policy  # noqa: E402,F401
from optimizer.cli import c360  # noqa: E402,F401
from optimizer.cli import evaluate  # noqa: E402,F401
from optimizer.cli import experiment  # noqa: E402,F401
from optimizer.cli import serve  # noqa: E402,F401


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the app, turning bad input into one-line errors."""
    try:
        app(args=argv, standalone_mode=False)
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except (typer.Exit, SystemExit) as exc:  # --help, explicit exits
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        return int(code or 0)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 1
    except Exception as exc:  # click usage errors and everything else
        import click

        if isinstance(exc, click.exceptions.ClickException):
            typer.echo(f"error: {exc.format_message()}", err=True)
            return exc.exit_code
        if os.environ.get("CONTACTPLAN_DEBUG"):
            raise
        typer.echo(f"error: {type(exc).__name__}: {exc} (set CONTACTPLAN_DEBUG=1 for the traceback)", err=True)
        return 1
    return 0


if __name__ == "__main__":  # python -m optimizer.cli
    sys.exit(main())
