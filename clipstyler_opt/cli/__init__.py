"""The `clipopt` command. Errors become one line and an exit code here, and only here."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any

import click

from clipstyler_opt.core.errors import EXIT_CODES, EXIT_INTERNAL, EXIT_INTERRUPTED, ClipoptError
from clipstyler_opt.core.naming import printable

__all__ = ["cli", "main"]

log = logging.getLogger("clipstyler_opt")


def _exit_code_epilog() -> str:
    rows = "\n".join(f"{code:>5}  {text}" for code, text in sorted(EXIT_CODES.items()))
    return f"\b\nExit codes:\n{rows}"


class _ErrorMappingGroup(click.Group):
    """Maps every failure of a subcommand to one line on stderr and its documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with _terminate_as_interrupt():
                return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except ClipoptError as exc:
            _report(f"error: {exc}", exc)
            ctx.exit(exc.exit_code)
        except Exception as exc:
            from clipstyler_opt.run.resources import is_out_of_memory, out_of_memory_error

            if is_out_of_memory(exc):  # e.g. CUDA out of memory: a resource limit, not a bug
                error = out_of_memory_error()
                _report(f"error: {error}", exc)
                ctx.exit(error.exit_code)
            # a bug: still one line unless -v asks for the traceback
            first_line = (str(exc).splitlines() or [""])[0]
            _report(f"internal error: {type(exc).__name__}: {first_line} (rerun with -v for the traceback)", exc)
            ctx.exit(EXIT_INTERNAL)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (schedulers, `kill`) stops every command as Ctrl-C does: exit 130, never a bare 143.
    Commands that keep partial work (run, batch) install the same handler around it themselves."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _report(line: str, exc: BaseException) -> None:
    """`line` on stderr as one line: newlines and undecodable bytes of file names are escaped."""
    if log.isEnabledFor(logging.DEBUG):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    click.echo(printable(line), err=True)


@click.group(cls=_ErrorMappingGroup, epilog=_exit_code_epilog(),
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="clipstyler_opt")
def cli() -> None:
    """Text-driven image style transfer (CLIPstyler): a fresh U-Net is optimised for each image."""


# Each command's module is imported when that command runs (or --help lists it), so checking a
# command line does not wait for torch and open_clip to load.
_COMMANDS = {"run": "run:run", "batch": "batch:batch", "sweep": "sweep:sweep", "bench": "bench:bench",
             "eval": "eval:eval_command", "info": "info:info", "report": "report:report", "study": "study:study",
             "weights": "weights:weights"}


def _list_commands(ctx: click.Context) -> list[str]:
    return list(_COMMANDS)


def _get_command(ctx: click.Context, name: str) -> click.Command | None:
    if name not in _COMMANDS:
        return None
    from importlib import import_module

    module, attribute = _COMMANDS[name].split(":")
    return getattr(import_module(f".{module}", __name__), attribute)


cli.list_commands = _list_commands  # type: ignore[method-assign]
cli.get_command = _get_command  # type: ignore[method-assign]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for the console script and `python -m clipstyler_opt`; returns the exit code."""
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="clipopt", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    return code if isinstance(code, int) else 0
