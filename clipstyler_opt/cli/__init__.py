"""The `clipopt` command. Errors become one line and an exit code here, and only here.

The subcommands are declared in `COMMANDS`, each with the module that holds it and its line in
`clipopt --help`. A command's module is imported only when that command runs or shows its own
help, and imports torch, Pillow and the like inside its functions, so every `--help` stays fast.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import import_module
from types import FrameType
from typing import Any

import click

from clipstyler_opt.core.errors import (
    EXIT_CODES,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_STDOUT_CLOSED,
    ClipoptError,
)
from clipstyler_opt.core.naming import printable

__all__ = ["COMMANDS", "CommandEntry", "cli", "main"]

log = logging.getLogger("clipstyler_opt")


@dataclass(frozen=True)
class CommandEntry:
    """One subcommand of `clipopt`: where its click command is, and its line in `clipopt --help`.

    To add a command, write a module in `clipstyler_opt/cli/` whose click command imports its heavy
    modules inside its functions, and add an entry to `COMMANDS` (tests/test_cli_commands.py checks
    both).

    Example:
        >>> entry = CommandEntry("info:info", "Show how an output was made.")
        >>> entry.module, entry.attribute
        ('clipstyler_opt.cli.info', 'info')
        >>> entry.load().name
        'info'
    """

    target: str  # "module:attribute", the module inside clipstyler_opt.cli
    summary: str  # one line, shown by `clipopt --help` without importing the module

    @property
    def module(self) -> str:
        return f"{__name__}.{self.target.partition(':')[0]}"

    @property
    def attribute(self) -> str:
        return self.target.partition(":")[2]

    def load(self) -> click.Command:
        """The click command (its module is imported now)."""
        command: click.Command = getattr(import_module(self.module), self.attribute)
        return command


# In the order `clipopt --help` lists them; a summary fits an 80-column terminal (at most 66 characters).
COMMANDS: dict[str, CommandEntry] = {
    "run": CommandEntry("run:run", "Stylise one IMAGE so that it looks like PROMPT."),
    "batch": CommandEntry("batch:batch", "Stylise every image in INPUT with every prompt (resumable)."),
    "sweep": CommandEntry("sweep:sweep", "A batch repeated for every cell of a grid of settings (--vary)."),
    "bench": CommandEntry("bench:bench", "Time optimisation steps of each variant against CLIPstyler's loop."),
    "eval": CommandEntry("eval:eval_command", "Score outputs or result folders for style and content."),
    "analyze": CommandEntry("analyze:analyze", "How texts and images correlate in each scorer's embedding space."),
    "info": CommandEntry("info:info", "Show how an output was made, read from its record."),
    "report": CommandEntry("report:report", "Write an HTML report of a result folder: images, metrics, losses."),
    "study": CommandEntry("study:study", "An A/B study page of a result folder's cells, and its analysis."),
    "experiment": CommandEntry("experiment:experiment",
                               "Run a plan file: sweep, eval, analyze and report in one folder."),
    "weights": CommandEntry("weights:weights", "List, prefetch, verify and inspect backbone weights."),
    "studio": CommandEntry("studio:studio", "A local web studio with live preview, and its REST API."),
}


def _exit_code_epilog() -> str:
    rows = "\n".join(f"{code:>5}  {text}" for code, text in sorted(EXIT_CODES.items()))
    return f"\b\nExit codes:\n{rows}"


def _stdout_closed() -> bool:
    """Whether standard output is a pipe whose reader has gone (`clipopt ... | head -1` after head exits)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or stdout is no file (tests)
        return False


def _discard_stdout() -> None:
    """Send what is left for standard output to /dev/null, so that Python's flush at exit does not
    report the closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


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
            if isinstance(exc, BrokenPipeError) and _stdout_closed():  # the reader stopped: not an error
                _discard_stdout()
                ctx.exit(EXIT_STDOUT_CLOSED)
            from clipstyler_opt.run.resources import is_out_of_memory, out_of_memory_error

            if is_out_of_memory(exc):  # e.g. CUDA out of memory: a resource limit, not a bug
                error = out_of_memory_error()
                _report(f"error: {error}", exc)
                ctx.exit(error.exit_code)
            # a bug: still one line unless -v asks for the traceback
            first_line = (str(exc).splitlines() or [""])[0]
            hint = " (rerun with -v for the traceback)" if self._has_verbose_option(ctx) else ""
            _report(f"internal error: {type(exc).__name__}: {first_line}{hint}", exc)
            ctx.exit(EXIT_INTERNAL)

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        self._arguments = list(args)  # to find a group's subcommand for the -v hint
        try:  # `clipopt --help` and `--version` print here
            return super().make_context(info_name, args, parent, **extra)
        except BrokenPipeError:
            if not _stdout_closed():
                raise
            _discard_stdout()
            raise click.exceptions.Exit(EXIT_STDOUT_CLOSED) from None

    def _has_verbose_option(self, ctx: click.Context) -> bool:
        """Whether the command that ran has -v (which shows tracebacks); within a group
        (`experiment run`), the subcommand named next on the command line."""
        try:
            command = self.get_command(ctx, ctx.invoked_subcommand or "")
            words = [a for a in getattr(self, "_arguments", []) if not a.startswith("-")]
            rest = words[words.index(ctx.invoked_subcommand) + 1:] if ctx.invoked_subcommand in words else []
            while isinstance(command, click.Group) and rest:
                command = command.get_command(ctx, rest.pop(0))
        except Exception:  # its module does not even import: no options to speak of
            return False
        return command is not None and any("-v" in param.opts for param in command.params)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        return entry.load() if entry is not None else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands with their declared summaries; no command module is imported."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, entry.summary) for name, entry in COMMANDS.items()])


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for the console script and `python -m clipstyler_opt`; returns the exit code.

    When standard output is a pipe whose reader has gone (`clipopt info X | head -1`), the rest of
    the output is dropped and the exit code is 141, as for a process ended by SIGPIPE.
    """
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="clipopt", standalone_mode=False)
        sys.stdout.flush()  # output still buffered fails here, not at interpreter exit
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the last buffered output (what commands print is handled in the group)
        if not _stdout_closed():
            raise
        _discard_stdout()
        return EXIT_STDOUT_CLOSED
    return code if isinstance(code, int) else 0
