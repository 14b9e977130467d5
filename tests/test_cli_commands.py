"""The command table of `clipopt`, light --help, a closed standard output, and the -v hint."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest

from clipstyler_opt.cli import COMMANDS, main

CLI_FOLDER = Path(__file__).parents[1] / "clipstyler_opt" / "cli"
HEAVY = ("torch", "PIL", "numpy", "open_clip", "kornia", "matplotlib")
STDOUT_CLOSED = 141


def _defined_commands(module_name: str) -> set[str]:
    """Attributes of a module that are click commands defined there and not a group's subcommand."""
    module = importlib.import_module(module_name)
    commands = {name: value for name, value in vars(module).items()
                if isinstance(value, click.Command) and value.callback is not None
                and value.callback.__module__ == module_name}
    children = {id(child) for value in commands.values() if isinstance(value, click.Group)
                for child in value.commands.values()}
    return {name for name, value in commands.items() if id(value) not in children}


def test_every_entry_loads_a_click_command_of_its_name_with_a_one_line_summary() -> None:
    assert list(COMMANDS) == ["run", "batch", "sweep", "bench", "eval", "analyze", "info", "report", "study",
                              "experiment", "weights", "studio"]
    for name, entry in COMMANDS.items():
        command = entry.load()
        assert isinstance(command, click.Command) and command.name == name, name
        assert entry.summary and "\n" not in entry.summary and len(entry.summary) <= 66, name
        assert command.params or isinstance(command, click.Group), name


def test_every_command_module_is_in_the_table() -> None:
    registered = {(entry.module, entry.attribute) for entry in COMMANDS.values()}
    found = set()
    for path in sorted(CLI_FOLDER.glob("*.py")):
        if path.stem != "__init__":  # the `clipopt` group itself
            module = f"clipstyler_opt.cli.{path.stem}"
            found |= {(module, name) for name in _defined_commands(module)}
    assert found == registered


def test_an_unregistered_command_would_be_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan above sees a command module it is not told about (and skips subcommands)."""
    (tmp_path / "extra_cmd.py").write_text(textwrap.dedent("""
        import click

        @click.group()
        def extra() -> None:
            "An extra command."

        @extra.command()
        def sub() -> None:
            "A subcommand."
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _defined_commands("extra_cmd") == {"extra"}


# Every --help in one fresh interpreter: after each, which heavy modules are newly loaded.
_PROBE = textwrap.dedent("""
    import contextlib, io, json, sys
    heavy = sys.argv[1].split(",")
    from clipstyler_opt.cli import COMMANDS, main
    lines = [[]] + [[name] for name in COMMANDS]
    lines += [["study", "make"], ["study", "analyze"], ["experiment", "run"], ["experiment", "status"],
              ["experiment", "report"], ["weights", "list"], ["weights", "download"],
              ["weights", "verify"], ["weights", "info"]]
    report = {}
    for words in lines:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main([*words, "--help"])
        report[" ".join(words) or "(clipopt)"] = {
            "code": code, "help": out.getvalue(), "heavy": [m for m in heavy if m in sys.modules]}
    print(json.dumps(report))
""")


def test_every_help_loads_no_heavy_module_and_the_top_help_lists_the_summaries() -> None:
    result = subprocess.run([sys.executable, "-c", _PROBE, ",".join(HEAVY)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for line, seen in report.items():
        assert seen["code"] == 0 and seen["help"].startswith("Usage: clipopt"), line
        assert seen["heavy"] == [], line
    top = report["(clipopt)"]["help"]
    for name, entry in COMMANDS.items():
        assert f"  {name}" in top and entry.summary in top, name
    assert "--vary FIELD=V1,V2" in report["sweep"]["help"]  # a command's own options are declared at import


def test_help_texts_show_the_values_of_their_sources() -> None:
    """The defaults --help shows are written in the command modules (so that --help loads no torch);
    they are the values the library uses."""
    from clipstyler_opt.cli import bench as bench_cli
    from clipstyler_opt.cli import eval as eval_cli
    from clipstyler_opt.cli import report as report_cli
    from clipstyler_opt.evaluate import PatchProtocol
    from clipstyler_opt.evaluate.protocols import PATCH_PROTOCOLS, SSIM_PROTOCOLS
    from clipstyler_opt.evaluate.scorer import DEFAULT_SCORERS
    from clipstyler_opt.report import REPORT_NAME
    from clipstyler_opt.report.load import EVAL_NAME
    from clipstyler_opt.tools.bench import PROMPT

    assert eval_cli.DEFAULT_SCORERS == DEFAULT_SCORERS and eval_cli.EVAL_NAME == EVAL_NAME
    protocol = PatchProtocol()
    assert protocol.crops == eval_cli.PATCH_CROPS and protocol.crop_size == eval_cli.PATCH_CROP_SIZE
    assert eval_cli.PATCH_PROTOCOLS == PATCH_PROTOCOLS and eval_cli.SSIM_PROTOCOLS == SSIM_PROTOCOLS
    assert protocol.name == PATCH_PROTOCOLS[0]
    assert report_cli.REPORT_NAME == REPORT_NAME and bench_cli.PROMPT == PROMPT


def _closed_pipe_run(args: list[str]) -> subprocess.CompletedProcess[str]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written, like `| head -1` after its line
    try:
        return subprocess.run([sys.executable, "-m", "clipstyler_opt", *args], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)


def test_output_into_a_closed_pipe_exits_141_quietly(tmp_path: Path) -> None:
    sidecar = tmp_path / "out.png.json"
    sidecar.write_text(json.dumps({"tool": "clipstyler_opt", "prompt": "starry night", "seed": 3}))
    for args in (["info", str(sidecar)], ["--help"], ["--version"], ["info", "--help"]):
        result = _closed_pipe_run(args)
        assert (result.returncode, result.stderr) == (STDOUT_CLOSED, ""), args


def test_a_broken_pipe_that_is_not_stdout_is_still_an_internal_error(monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import clipstyler_opt.run.record as record

    def broken(path: Path) -> None:
        raise BrokenPipeError("a worker's pipe")

    monkeypatch.setattr(record, "read_record", broken)
    assert main(["info", "x.png"]) == 1
    assert capsys.readouterr().err.strip() == "internal error: BrokenPipeError: a worker's pipe"


def test_the_traceback_hint_names_v_only_where_the_command_has_it(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 tmp_path: Path) -> None:
    import clipstyler_opt.batch as batch
    import clipstyler_opt.run.record as record

    def bug(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(record, "read_record", bug)
    monkeypatch.setattr(batch, "run_batch", bug)
    assert main(["info", "x.png"]) == 1  # info has no -v
    assert capsys.readouterr().err.strip() == "internal error: RuntimeError: a bug"
    assert main(["batch", str(tmp_path), "-p", "ink", "-o", str(tmp_path / "out"), "-q"]) == 1
    assert capsys.readouterr().err.strip() == "internal error: RuntimeError: a bug (rerun with -v for the traceback)"
    import clipstyler_opt.experiment.plan as plan

    monkeypatch.setattr(plan, "read_plan", bug)  # a group's subcommand with -v: `experiment run`
    assert main(["experiment", "run", str(tmp_path / "plan.toml"), "-q"]) == 1
    assert capsys.readouterr().err.strip() == "internal error: RuntimeError: a bug (rerun with -v for the traceback)"
