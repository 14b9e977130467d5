"""Click options generated from `StyleConfig`, the `--config FILE.toml` layer, and verbosity."""

from __future__ import annotations

import dataclasses
import functools
import logging
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from clipstyler_opt.core.coercion import field_hint, text_value, typed_value
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.config_files import load_toml
from clipstyler_opt.core.errors import ConfigError

__all__ = ["CONFIG_FILE_KEY", "FieldText", "config_file_option", "configure_logging", "field_options", "given_options",
           "split_config", "style_options", "verbosity_options"]

F = Callable[..., Any]
CONFIG_FILE_KEY = "clipstyler_opt.config_file"  # in click's context meta: the --config file given


class FieldText(click.ParamType):
    """A command-line word read as a StyleConfig field's value by core/coercion.py, the one
    conversion shared with config files, `--vary` and `run --from`.

    Example:
        >>> FieldText("steps", "integer").convert("3", None, None)
        3
    """

    def __init__(self, field: str, kind: str) -> None:
        self.field, self.name = field, kind

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):  # a default, or a value from --config (checked there)
            return typed_value(self.field, value)
        try:
            return text_value(self.field, value)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


def _param_type(name: str, meta: typing.Mapping[str, Any]) -> click.ParamType:
    if "choices" in meta:
        return click.Choice(meta["choices"])
    if meta.get("path"):
        return click.Path(path_type=Path)
    hint = field_hint(name)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1 else hint
    kind = {int: "integer", float: "float"}.get(base)
    return FieldText(name, kind) if kind else click.STRING


def style_options(func: F) -> F:
    """One option per StyleConfig field, default and help taken from the field."""
    return field_options(StyleConfig.field_names())(func)


def field_options(names: typing.Collection[str]) -> Callable[[F], F]:
    """A decorator adding the options of the StyleConfig fields `names` (as `style_options` does
    for all of them), e.g. the weights options of `clipopt studio`."""
    return functools.partial(_add_field_options, names=frozenset(names))


def _add_field_options(func: F, names: frozenset[str]) -> F:
    for f in reversed(dataclasses.fields(StyleConfig)):
        if f.name not in names:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = f"[{f.metadata['role']}] {f.metadata['help']}"
        if field_hint(f.name) is bool:  # --x/--no-x, so that a config file's `x = true` can be undone
            option = click.option(f"{flag}/--no-{flag[2:]}", f.name, default=f.default, show_default=True,
                                  help=help_text)
        elif f.metadata.get("multiple"):
            option = click.option(flag, f.name, multiple=True, type=_param_type(f.name, f.metadata),
                                  metavar=f.metadata.get("metavar", "FILE" if f.metadata.get("path") else "SPEC"),
                                  default=f.default,
                                  help=help_text)
        else:
            option = click.option(flag, f.name, type=_param_type(f.name, f.metadata), default=f.default,
                                  show_default=f.default is not None, help=help_text)
        func = option(func)
    return func


def given_options(names: Any) -> set[str] | None:
    """The parameters among `names` given on the command line or in --config (not defaults);
    None outside a click context."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return None
    return {k for k in names if ctx.get_parameter_source(k) not in (click.core.ParameterSource.DEFAULT, None)}


def split_config(params: dict[str, Any]) -> tuple[StyleConfig, dict[str, Any]]:
    """Separate StyleConfig fields from a command's other parameters. Options given explicitly
    (even at their default value) win over a --preset."""
    names = set(StyleConfig.field_names())
    values = {k: v for k, v in params.items() if k in names}
    config = StyleConfig(**values, explicit_fields=given_options(values))
    return config, {k: v for k, v in params.items() if k not in names}


def _from_file(param: click.Parameter, value: Any, folder: Path) -> Any:
    """A TOML value as the command line would give it: paths relative to the file's folder,
    and a single string for a repeatable parameter meaning one item, not one per character."""
    many = getattr(param, "multiple", False) or param.nargs == -1
    if many and isinstance(value, str):
        value = [value]
    if isinstance(param.type, click.Path):
        def resolve(item: Any) -> Any:
            return str(folder / Path(item).expanduser()) if isinstance(item, str) else item

        value = [resolve(v) for v in value] if isinstance(value, list) else resolve(value)
    return value


def _load_config_file(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    if value is None:
        return None
    params = {p.name: p for p in ctx.command.params if p.name and p.name not in ("config", "quiet", "verbose")}
    values = load_toml(value, tuple(params))
    # Values from the file become the defaults; anything on the command line still wins.
    resolved = {k: _from_file(params[k], v, value.parent) for k, v in values.items()}
    ctx.default_map = {**(ctx.default_map or {}), **resolved}
    ctx.meta[CONFIG_FILE_KEY] = value  # a file the command reads: never to be written over
    return value


def config_file_option(func: F) -> F:
    return click.option("--config", "config", type=click.Path(path_type=Path, dir_okay=False), is_eager=True,
                        expose_value=False, callback=_load_config_file,
                        help="TOML file with any of these options (keys as option names); "
                             "the command line overrides it.")(func)


def configure_logging(verbosity: int) -> None:
    """0 quiet (errors only), 1 normal (warnings), 2 verbose (debug, tracebacks)."""
    level = {0: logging.ERROR, 1: logging.WARNING}.get(verbosity, logging.DEBUG)
    logger = logging.getLogger("clipstyler_opt")
    logger.handlers.clear()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def verbosity_options(func: F) -> F:
    func = click.option("-v", "--verbose", is_flag=True, help="Debug logging, and tracebacks on errors.")(func)
    return click.option("-q", "--quiet", is_flag=True,
                        help="No progress bars; errors only (run and batch still print each path they "
                             "write, for scripts).")(func)


def verbosity(quiet: bool, verbose: bool) -> int:
    level = 0 if quiet else 2 if verbose else 1
    configure_logging(level)
    return level
