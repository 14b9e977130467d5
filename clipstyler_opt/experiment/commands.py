"""A plan as the command lines of the existing commands: sweep, eval, analyze, study make, report.

The experiment runs nothing itself: each step is the command a user could type, built here as a
list of words and parsed by that command's own parser (so its checks and defaults apply).
Options of a step's table are that command's long option names (`patch-crops` or
`patch_crops`); options of `[settings]` that a step also has (device, weights files, caches)
are passed on to it unless its table gives them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from clipstyler_opt.core.config import unknown_setting_message
from clipstyler_opt.experiment.plan import Plan

__all__ = ["REPORT_FILE", "STUDY_FILE", "Step", "step_words", "sweep_words"]

STUDY_FILE = "study.html"  # the study page's default name in the experiment folder
REPORT_FILE = "report.html"
_RESERVED = ("quiet", "verbose")  # the experiment's own -q/-v are passed on


@dataclass(frozen=True)
class Step:
    """One command of an experiment: its name (`eval`), the words after `clipopt`, and the
    plan table each option came from (for errors).

    Example:
        >>> step = Step("report", ("report", "out dir", "--figures"), {}, ("-q",))
        >>> step.shown()
        "clipopt report 'out dir' --figures -q"
    """

    name: str
    words: tuple[str, ...]  # what the step does (its fingerprint reads these)
    sources: dict[str, tuple[str, ...]]  # click parameter name -> plan key
    verbosity: tuple[str, ...] = ()  # -q or -v: how much it says, which changes nothing it makes

    @property
    def argv(self) -> tuple[str, ...]:
        """The words after `clipopt`."""
        return self.words + self.verbosity

    def shown(self) -> str:
        """The command line as a user would type it."""
        import shlex

        return "clipopt " + " ".join(shlex.quote(word) for word in self.argv)


def _field_words(name: str, value: Any) -> list[str]:
    """A StyleConfig value as `clipopt run` options."""
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag if value else f"--no-{flag[2:]}"]
    if isinstance(value, list):
        return [word for item in value for word in (flag, str(item))]
    return [flag, str(value)]


def sweep_words(plan: Plan, folder: Path, *, shard: str | None, workers_per_device: int, quiet: bool,
                verbose: bool) -> Step:
    """`clipopt sweep` for the plan's cells into `folder`.

    Example:
        >>> import tempfile
        >>> from clipstyler_opt.experiment.plan import read_plan
        >>> home = Path(tempfile.mkdtemp())
        >>> _ = (home / "p.toml").write_text('[content]\\nimages=["."]\\n[prompts]\\ntext=["ink"]\\n'
        ...                                  '[settings]\\nsteps=5\\n[replicates]\\nseeds=[1,2]\\n')
        >>> step = sweep_words(read_plan(home / "p.toml"), home / "out", shard=None, workers_per_device=1,
        ...                    quiet=True, verbose=False)
        >>> step.argv[2:4], step.argv[6:]
        (('-p', 'ink'), ('--format', 'png', '--workers-per-device', '1', '--steps', '5', '--vary', 'seed=[1, 2]', '-q'))
    """
    words = ["sweep", *plan.images]
    sources: dict[str, tuple[str, ...]] = {"inputs": ("content", "images")}
    for prompt in plan.prompts:
        words += ["-p", prompt]
    words += ["-o", os.fspath(folder), "--format", plan.output_format,
              "--workers-per-device", str(workers_per_device)]
    if plan.recursive:
        words.append("--recursive")
    if shard is not None:
        words += ["--shard", shard]
    for name, value in plan.settings.items():
        words += _field_words(name, value)
        sources[name] = ("settings", name)
    for dimension in plan.dimensions:
        words += ["--vary", dimension.vary()]
    sources["vary"] = ("grid",)
    return Step("sweep", tuple(words), sources, ("-q",) if quiet else ("-v",) if verbose else ())


def _long_name(param: click.Parameter) -> str:
    return max((opt for opt in param.opts if opt.startswith("--")), key=len, default=param.opts[0])[2:]


def _options(command: click.Command) -> dict[str, click.Option]:
    """The command's options by long name with '_' (`patch_crops`), without the reserved ones."""
    return {_long_name(p).replace("-", "_"): p for p in command.params
            if isinstance(p, click.Option) and p.name not in _RESERVED}


def _option_words(plan: Plan, key: tuple[str, ...], param: click.Option, value: Any) -> list[str]:
    flag = "--" + _long_name(param)
    if param.is_flag:
        if not isinstance(value, bool):
            raise plan.error(key, f"must be true or false, got {value!r}")
        if value:
            return [flag]
        return [param.secondary_opts[0]] if param.secondary_opts else []
    values = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not param.multiple:
        raise plan.error(key, f"takes one value, got {len(value)}")
    if any(isinstance(item, (dict, list)) for item in values):
        raise plan.error(key, f"must be a value or an array of values, got {value!r}")
    words = []
    for item in values:
        text = json.dumps(item) if isinstance(item, bool) else str(item)
        if isinstance(param.type, click.Path) and key[0] != "settings":
            text = os.fspath((plan.folder / Path(text).expanduser()).resolve())
        words += [flag, text]
    return words


def step_words(plan: Plan, step: str, command: click.Command, head: tuple[str, ...], *, quiet: bool,
               verbose: bool) -> Step:
    """The command line of one step (`eval`, `analyze`, `study`, `report`): `head` (the command
    words and its arguments), then the options of the step's table and the shared settings.
    An option the command does not have is a PlanError at its line."""
    options = _options(command)
    table = plan.steps.get(step, {})
    words, sources = list(head), dict[str, tuple[str, ...]]()
    for key, value in table.items():
        param = options.get(key)
        if param is None:
            hint = unknown_setting_message(key, tuple(options)).partition(" (")[2]
            raise plan.error((step, key), f"not an option of clipopt {' '.join(head[:2 if step == 'study' else 1])}"
                             + (f" ({hint}" if hint else ""))
        words += _option_words(plan, (step, key), param, value)
        sources[str(param.name)] = (step, key)
    for name, value in plan.settings.items():
        param = options.get(name)
        if param is not None and name not in table and param.name not in _RESERVED:
            words += _option_words(plan, ("settings", name), param, value)
            sources[str(param.name)] = ("settings", name)
    talks = "quiet" in {p.name for p in command.params}
    return Step(step, tuple(words), sources, ("-q",) if quiet and talks else ("-v",) if verbose and talks else ())

