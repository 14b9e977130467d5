"""`clipopt info OUT`: how an output was made, read back from its sidecar or embedded metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.naming import printable

__all__ = ["describe_record", "info"]

_SHOWN = {"tool", "prompt", "seed", "created", "input", "output_size", "settings", "settings_hash", "backbone",
          "backbones", "content_network", "device", "precision", "requested_precision", "timings", "losses",
          "history", "skipped_steps", "warnings", "versions"}


def describe_record(record: dict[str, Any], defaults: dict[str, Any] | None = None) -> list[str]:
    """Readable lines for a provenance record; keys this version does not know are listed as they are.

    Args:
        record: the record, as `read_record` returns it.
        defaults: the default settings to compare with (default: `StyleConfig().output_settings()`).

    Returns:
        The lines to print; control characters in any value are shown as backslash escapes.

    Example:
        >>> describe_record({"prompt": "oil\\x1b[2J", "seed": 3}, defaults={})[:2]
        ['prompt: oil\\\\x1b[2J', 'seed: 3']
    """
    defaults = StyleConfig().output_settings() if defaults is None else defaults
    lines = [f"prompt: {record.get('prompt', '?')}", f"seed: {record.get('seed', '?')}"]
    if "created" in record:
        lines.append(f"created: {record['created']}")
    lines += _image_lines(record)
    lines += _settings_lines(record.get("settings", {}), defaults)
    if "settings_hash" in record:
        lines.append(f"settings hash: {record['settings_hash']}")
    backbones = record.get("backbones", [record["backbone"]] if "backbone" in record else [])
    for number, backbone in enumerate(backbones, start=1):
        lines.append(f"backbone {number}: {_backbone_name(backbone)}{_weights(backbone)}")
    if "content_network" in record:
        lines.append(f"content network:{_weights(record['content_network']) or ' -'}")
    if "device" in record:
        requested = record.get("requested_precision")
        asked = f" (requested {requested})" if requested and requested != record.get("precision") else ""
        lines.append(f"device: {record['device']}, precision {record.get('precision', '?')}{asked}")
    if record.get("timings"):
        timings = record["timings"].items()
        lines.append("timings: " + ", ".join(f"{k.removesuffix('_s')} {_value(v)} s" for k, v in timings))
    if record.get("losses"):
        lines.append("losses: " + ", ".join(f"{k} {_value(v)}" for k, v in record["losses"].items()))
    if "history" in record:
        lines.append(f"history: {len(record['history'])} steps (see --json)")
    if record.get("skipped_steps"):
        lines.append("skipped steps: " + ", ".join(str(s) for s in record["skipped_steps"]))
    lines += [f"warning: {w}" for w in record.get("warnings", [])]
    if record.get("versions"):
        lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in record["versions"].items()))
    lines += [f"{key}: {_value(record[key])}" for key in sorted(record) if key not in _SHOWN]
    return [printable(line) for line in lines]  # metadata is anyone's text: no terminal escapes pass


def _image_lines(record: dict[str, Any]) -> list[str]:
    source = record.get("input") or {}
    size = record.get("output_size")
    made = f"{size[0]}x{size[1]}" if isinstance(size, list) and len(size) == 2 else "?"
    if not source:
        return [f"output: {made}"]
    in_size = source.get("size")
    details = [f"{in_size[0]}x{in_size[1]}"] if isinstance(in_size, list) and len(in_size) == 2 else []
    if source.get("sha256"):
        details.append(f"sha256 {source['sha256']}")
    return [f"output: {made} from {source.get('source', '?')}" + (f" ({', '.join(details)})" if details else "")]


def _settings_lines(settings: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    changed = [(k, v) for k, v in settings.items() if k not in defaults or defaults[k] != v]
    if not changed:
        return ["settings: all defaults" if settings else "settings: not recorded"]
    lines = ["settings that differ from the defaults:"]
    for key, value in changed:
        default = f"default {_value(defaults[key])}" if key in defaults else "not a setting of this version"
        lines.append(f"  {key}: {_value(value)} ({default})")
    return lines


def _backbone_name(backbone: dict[str, Any]) -> str:
    if backbone.get("spec"):
        name = str(backbone["spec"])
    elif backbone.get("model"):
        name = f"{backbone['model']}/{backbone['pretrained']}" if backbone.get("pretrained") else backbone["model"]
    else:
        name = str(backbone.get("family", "?"))
    weight = backbone.get("weight")
    return name + (f" (weight {_value(weight)})" if weight not in (None, 1, 1.0) else "")


def _weights(part: dict[str, Any]) -> str:
    path = part.get("weights")
    name = part.get("weights_name") or (os.path.basename(path) if isinstance(path, str) else None)
    if not name:
        return ""
    text = f" weights {name}"
    if isinstance(path, str) and path != name:
        text += f" at {path}"
    if part.get("weights_sha256"):
        text += f", sha256 {part['weights_sha256']}"
    return text + (f" ({part['weights_origin']})" if part.get("weights_origin") else "")


def _value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


@click.command()
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the raw record as JSON instead.")
def info(output: Path, as_json: bool) -> None:
    """Show how OUTPUT was made: prompt, seed, changed settings, weights, device, timings, losses.

    Reads the JSON sidecar when it exists (it keeps full paths), else the metadata embedded in
    the image. Exit code 3 when there is no record.
    """
    from clipstyler_opt.run.record import read_record

    record, source = read_record(output)
    if as_json:
        click.echo(json.dumps(record, indent=2, sort_keys=True))
        return
    click.echo(f"read from: {source}")
    for line in describe_record(record):
        click.echo(line)
