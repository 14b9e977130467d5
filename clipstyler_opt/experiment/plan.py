"""An experiment plan: one TOML file that declares a whole comparison.

Tables (every one optional except `content` and `prompts`):

- `[experiment]` name, description, format (of the outputs: png, jpg, webp);
- `[content]` images (folders, files or glob patterns), recursive;
- `[prompts]` text (prompts), files (text files, one prompt a line);
- `[backbones]` LABEL = SPEC (or a list of specs: an ensemble), one cell per backbone;
- `[settings]` any `clipopt run` option, fixed for every cell;
- `[grid]` FIELD = [V1, V2] or `[grid.FIELD]` LABEL = VALUE: the varied settings;
- `[replicates]` seeds = [0, 1]: every cell is run once per seed;
- `[eval]`, `[analyze]`, `[study]`, `[report]`: options of those commands (checked by the
  commands' own parsers); analyze and the study page run when their table is present.

Relative paths are relative to the plan's folder. Anything wrong (an unknown key, a wrong
type, an empty grid, a label used twice for different values, a path that does not exist) is a
`PlanError` naming FILE:LINE and the key, before any work.
"""

from __future__ import annotations

import glob
import hashlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipstyler_opt.core.coercion import shown_value, value_mismatch
from clipstyler_opt.core.config import StyleConfig, unknown_setting_message
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.experiment.dimensions import Dimension, read_dimensions
from clipstyler_opt.experiment.lines import key_lines, key_occurrences, line_of

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

__all__ = ["STEP_TABLES", "Dimension", "Plan", "PlanError", "parse_plan", "read_plan"]

STEP_TABLES = ("eval", "analyze", "study", "report")
FORMATS = ("png", "jpg", "webp")
_TABLES = ("experiment", "content", "prompts", "backbones", "settings", "grid", "replicates", *STEP_TABLES)
_KEYS = {"experiment": ("name", "description", "format"), "content": ("images", "recursive"),
         "prompts": ("text", "files"), "replicates": ("seeds",)}
_MAX_PLAN_BYTES = 1 << 20
_GLOB = re.compile(r"[*?[]")


class PlanError(ConfigError):
    """A plan that cannot be run: one line, `FILE:LINE: KEY: what is wrong` (exit 2)."""


@dataclass(frozen=True)
class Plan:
    """A parsed, checked plan. Paths are absolute; `settings` are typed StyleConfig values."""

    path: Path
    folder: Path  # where relative paths start
    text: str
    name: str
    description: str
    images: tuple[str, ...]
    recursive: bool
    prompts: tuple[str, ...]  # given in the plan, then read from prompt files, in order, once each
    prompt_files: tuple[Path, ...]
    output_format: str
    settings: dict[str, Any]
    dimensions: tuple[Dimension, ...]  # backbone (when given), the grid in order, seed last
    steps: dict[str, dict[str, Any]]  # the step tables, keys with '_' (dashes allowed in the file)
    lines: dict[tuple[str, ...], int] = field(repr=False, default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def error(self, key: tuple[str, ...], message: str) -> PlanError:
        """A PlanError at `key` (`FILE:LINE: a.b: message`), the key spelled as the file spells it.

        Example:
            >>> import tempfile
            >>> path = Path(tempfile.mkdtemp()) / "plan.toml"
            >>> _ = path.write_text('[content]\\nimages = ["."]\\n[prompts]\\ntext = ["ink"]\\n'
            ...                     '[eval]\\npatch-crops = 8\\n')
            >>> str(read_plan(path).error(("eval", "patch_crops"), "bad")).split("plan.toml:")[1]
            '6: eval.patch-crops: bad'
        """
        return _error(self.path, self.lines, key, message)

    def step_enabled(self, step: str) -> bool:
        """eval and report always run; analyze and the study page when their table is there.

        Example:
            >>> import tempfile
            >>> path = Path(tempfile.mkdtemp()) / "plan.toml"
            >>> _ = path.write_text('[content]\\nimages = ["."]\\n[prompts]\\ntext = ["ink"]\\n[study]\\n')
            >>> read_plan(path).step_enabled("study"), read_plan(path).step_enabled("analyze")
            (True, False)
        """
        return step in ("eval", "report") or step in self.steps


def _error(path: Path, lines: dict[tuple[str, ...], int], key: tuple[str, ...], message: str) -> PlanError:
    def plain(parts: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(part.replace("-", "_") for part in parts)

    key = next((written for written in lines if plain(written) == plain(key)), key)  # as the file spells it
    line = line_of(lines, key)
    where = f"{path}:{line}" if line is not None else str(path)
    return PlanError(f"{where}: {'.'.join(key)}: {message}" if key else f"{where}: {message}")


class _Reader:
    """Reads the raw TOML dictionary into a Plan, raising PlanError at the first problem."""

    def __init__(self, path: Path, text: str, folder: Path) -> None:
        self.path, self.text, self.folder = path, text, folder
        self.lines = key_lines(text)
        try:
            self.raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
            where = f"{path}:{match.group(1)}" if match else str(path)
            message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
            repeated = [key for key, line in key_occurrences(text) if match and line == int(match.group(1))]
            if repeated and ("overwrite" in message or "twice" in message):
                raise PlanError(f"{where}: {'.'.join(repeated[-1])}: is given twice (a label, key or table "
                                "names one thing)") from None
            raise PlanError(f"{where}: not valid TOML: {message}") from None

    def fail(self, key: tuple[str, ...], message: str) -> PlanError:
        return _error(self.path, self.lines, key, message)

    def table(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name, {})
        if not isinstance(value, dict):
            raise self.fail((name,), f"must be a table ([{name}]), got {shown_value(value)}")
        return value

    def closed(self, name: str) -> dict[str, Any]:
        """A table whose keys are fixed (`_KEYS`), keys normalised to '_'."""
        values = {key.replace("-", "_"): value for key, value in self.table(name).items()}
        for key in self.table(name):
            if key.replace("-", "_") not in _KEYS[name]:
                raise self.fail((name, key), unknown_setting_message(key, _KEYS[name]))
        return values

    def text_list(self, key: tuple[str, ...], value: Any, *, required: bool = False) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise self.fail(key, f"must be a string or an array of strings, got {shown_value(value)}")
        if required and not items:
            raise self.fail(key, "is empty")
        return items

    def existing(self, key: tuple[str, ...], text: str) -> Path:
        path = (self.folder / Path(text).expanduser()).resolve() if text else self.folder
        if not text or not path.exists():
            raise self.fail(key, f"{text!r}: no such file or folder (relative paths start at {self.folder})")
        return path

    def read(self) -> Plan:
        for name in self.raw:
            if name not in _TABLES:
                raise self.fail((name,), unknown_setting_message(name, _TABLES))
        meta = self.closed("experiment")
        name = self.plain_text(("experiment", "name"), meta.get("name", self.path.stem))
        description = self.plain_text(("experiment", "description"), meta.get("description", ""))
        output_format = self.plain_text(("experiment", "format"), meta.get("format", "png"))
        if output_format not in FORMATS:
            raise self.fail(("experiment", "format"), f"must be one of {', '.join(FORMATS)}, got {output_format!r}")
        images, recursive = self.content()
        prompts, files = self.prompts()
        settings = self.settings()
        dimensions = read_dimensions(self, settings)
        steps = {step: {key.replace("-", "_"): self.step_value((step, key), value)
                        for key, value in self.table(step).items()}
                 for step in STEP_TABLES if step in self.raw}
        return Plan(self.path, self.folder, self.text, name, description, images, recursive, prompts, files,
                    output_format, settings, dimensions, steps, self.lines)

    def step_value(self, key: tuple[str, ...], value: Any) -> Any:
        """A step option's value; a scorer's `file=` and `tokenizer=` paths made absolute and checked."""
        if key[-1].replace("-", "_") != "scorer" or not isinstance(value, (str, list)):
            return value
        return self.backbone_paths(key, value)

    def plain_text(self, key: tuple[str, ...], value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {shown_value(value)}")
        return value

    def content(self) -> tuple[tuple[str, ...], bool]:
        content = self.closed("content")
        if "images" not in content:
            raise self.fail(("content",), "missing: give images = [folders, files or glob patterns]")
        images = []
        for text in self.text_list(("content", "images"), content["images"], required=True):
            if _GLOB.search(text):
                pattern = str(self.folder / Path(text).expanduser())
                if not glob.glob(pattern, recursive=True):
                    raise self.fail(("content", "images"), f"{text!r}: the pattern matches nothing")
                images.append(pattern)
            else:
                images.append(str(self.existing(("content", "images"), text)))
        recursive = content.get("recursive", False)
        if not isinstance(recursive, bool):
            raise self.fail(("content", "recursive"), f"must be true or false, got {shown_value(recursive)}")
        return tuple(images), recursive

    def prompts(self) -> tuple[tuple[str, ...], tuple[Path, ...]]:
        from clipstyler_opt.batch.jobs import read_prompts_file, unique_prompts

        prompts = self.closed("prompts")
        texts = self.text_list(("prompts", "text"), prompts.get("text", []))
        files = tuple(self.existing(("prompts", "files"), text)
                      for text in self.text_list(("prompts", "files"), prompts.get("files", [])))
        for file in files:
            try:
                texts += read_prompts_file(file)
            except ConfigError as exc:
                raise self.fail(("prompts", "files"), str(exc)) from None
        if not any(text.strip() for text in texts):
            raise self.fail(("prompts",), "no prompt: give text = [...] or files = [...]")
        return tuple(unique_prompts(texts)), files

    def settings(self) -> dict[str, Any]:
        fields = StyleConfig.field_names()
        values: dict[str, Any] = {}
        for key, value in self.table("settings").items():
            name = key.replace("-", "_")
            where = ("settings", key)
            if name not in fields:
                raise self.fail(where, unknown_setting_message(name, fields))
            if name == "seed":
                raise self.fail(where, "give the seeds as [replicates] seeds = [...] (each is a replicate)")
            expected = value_mismatch(name, value)
            if expected is not None:
                raise self.fail(where, f"must be {expected}, got {shown_value(value)}")
            values[name] = self.field_paths(where, name, value)
        try:
            StyleConfig(**values)
        except ConfigError as exc:
            raise self.fail(("settings",), str(exc)) from None
        return values

    def field_paths(self, key: tuple[str, ...], name: str, value: Any) -> Any:
        """`value` with the field's paths made absolute and checked (files, backbones' file=)."""
        if name == "backbone":
            return self.backbone_paths(key, value)
        if not StyleConfig.field_meta(name).get("path") or value is None:
            return value
        if isinstance(value, list):
            return [str(self.existing(key, item)) for item in value]
        return str(self.existing(key, value))

    def backbone_paths(self, key: tuple[str, ...], value: Any) -> Any:
        """Backbone specs (one, or a list) with their file= and tokenizer= paths absolute and checked."""
        from dataclasses import replace

        from clipstyler_opt.core.backbone_spec import BackboneSpec

        specs = []
        for text in [value] if isinstance(value, str) else value:
            try:
                spec = BackboneSpec.parse(text)
            except ConfigError as exc:
                raise self.fail(key, str(exc)) from None
            if spec.file is not None:
                spec = replace(spec, file=self.existing(key, str(spec.file)))
            if spec.tokenizer is not None:
                spec = replace(spec, tokenizer=self.existing(key, str(spec.tokenizer)))
            specs.append(str(spec) if spec != BackboneSpec.parse(text) else text)
        return specs if isinstance(value, list) else specs[0]


def read_plan(path: Path, *, relative_to: Path | None = None) -> Plan:
    """Read and check a plan file (see the module docstring); PlanError at the first problem.
    Relative paths start at the plan's folder, or at `relative_to` (for the copy of a plan kept
    in an experiment folder).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "plan.toml").write_text('[content]\\nimages = ["."]\\n[prompts]\\ntext = ["ink"]\\n'
        ...                                       '[grid.lambda_content]\\nlow = 50\\nhigh = 150\\n')
        >>> plan = read_plan(folder / "plan.toml")
        >>> [(d.field, d.values) for d in plan.dimensions]
        [('lambda_content', (('low', 50.0), ('high', 150.0))), ('seed', ((None, 0),))]
    """
    from clipstyler_opt.core.files import read_text

    path = Path(path)
    text = read_text(path, limit=_MAX_PLAN_BYTES, what="experiment plan")
    return parse_plan(path, text, relative_to=relative_to)


def parse_plan(path: Path, text: str, *, relative_to: Path | None = None) -> Plan:
    """Check a plan's `text` as if it were the file at `path` (which need not exist yet), as
    `read_plan` does; PlanError at the first problem. For a writer that checks before it writes.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> parse_plan(folder / "plan.toml", '[content]\\nimages = ["."]\\n[prompts]\\ntext = ["ink"]\\n').prompts
        ('ink',)
    """
    path = Path(path)
    return _Reader(path, text, path.parent if relative_to is None else relative_to).read()
