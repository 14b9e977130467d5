"""The `clipopt` command. Errors become one line and an exit code here, and only here."""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Sequence

import click

from ..errors import EXIT_CODES, EXIT_INTERNAL, EXIT_INTERRUPTED, ClipoptError

__all__ = ["main", "cli"]

log = logging.getLogger("clipstyler_opt")


def _exit_code_epilog() -> str:
    return "Exit codes:\n\n" + "\n\n".join(f"  {code}  {text}" for code, text in sorted(EXIT_CODES.items()))


@click.group(epilog=_exit_code_epilog(), context_settings={"help_option_names": ["-h", "--help"],
                                                           "max_content_width": 100})
@click.version_option(package_name="clipstyler_opt")
def cli() -> None:
    """Text-driven image style transfer (CLIPstyler): a fresh U-Net is optimised for each image."""


def _register_commands() -> None:
    from .run import run

    for command in (run,):
        cli.add_command(command)


_register_commands()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for the console script and `python -m clipstyler_opt`; returns the exit code."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="clipopt", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except ClipoptError as exc:
        _report(f"error: {exc}", exc)
        return exc.exit_code
    except Exception as exc:  # a bug: still one line unless -v asks for the traceback
        _report(f"internal error: {type(exc).__name__}: {exc} (rerun with -v for the traceback)", exc)
        return EXIT_INTERNAL
    return 0


def _report(line: str, exc: BaseException) -> None:
    if log.isEnabledFor(logging.DEBUG):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    click.echo(line.splitlines()[0] if line else line, err=True)
