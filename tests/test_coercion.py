"""One coercion of option values: the command line, config files, `--vary` and `run --from` read a
value the same way, and where they used to disagree the config file's strict rules win."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from clipstyler_opt.batch.grid import parse_vary
from clipstyler_opt.cli import cli
from clipstyler_opt.core.errors import ConfigError

# (field, a typed value of the wrong type, what the config file says is expected)
WRONG_TYPES = [
    ("seed", 1.5, "an integer"),
    ("steps", "abc", "an integer"),
    ("contrast", "yes", "true or false"),
    ("lr", True, "a number"),
    ("source_text", 3, "a string"),
    ("backbone", [1], "a string or an array of them"),
]


def _record(tmp_path: Path, **config: object) -> Path:
    sidecar = tmp_path / "out.png.json"
    sidecar.write_text(json.dumps({"prompt": "oil", "config": config, "input": {"source": str(tmp_path / "in.png")}}))
    return sidecar


@pytest.mark.parametrize(("name", "value", "expected"), WRONG_TYPES)
def test_the_same_wrong_value_is_refused_alike_by_a_config_file_and_run_from(
        tmp_path: Path, name: str, value: object, expected: str) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text(f"{name} = {json.dumps(value)}\n")
    from_file = CliRunner().invoke(cli, ["run", "in.png", "x", "--config", str(toml)])
    from_record = CliRunner().invoke(cli, ["run", "--from", str(_record(tmp_path, **{name: value}))])
    for result in (from_file, from_record):
        assert result.exit_code == 2, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert f"must be {expected}, got {json.dumps(value)}" in result.output
    assert f"the record's {name} must be" in from_record.output


def test_run_from_reads_good_recorded_values_with_their_types(tmp_path: Path) -> None:
    from clipstyler_opt.run.rerun import rerun_from_record

    record = {"prompt": "oil", "input": {"source": "in.png"},
              "config": {"lr": 1, "steps": 3, "output_size": "64", "style_image": [], "contrast": True,
                         "threshold": None, "clip_model_config": []}}
    values = rerun_from_record(record).values
    assert values["lr"] == 1.0 and isinstance(values["lr"], float)
    assert (values["steps"], values["output_size"], values["style_image"]) == (3, "64", ())
    assert values["contrast"] is True and values["threshold"] is None


@pytest.mark.parametrize(("args", "message"), [
    (["--steps", "1.5"], "'1.5' is not an integer"),
    (["--lr", "fast"], "'fast' is not a number"),
])
def test_the_command_line_reads_words_like_vary(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["run", "in.png", "x", *args])
    assert result.exit_code == 2 and message in result.output
    name = args[0][2:]
    with pytest.raises(ConfigError, match=message):
        parse_vary(f"{name}={args[1]}")


def test_vary_json_values_follow_the_strict_rules_and_keep_their_extra_syntax() -> None:
    with pytest.raises(ConfigError, match=r"1\.5 is not an integer"):
        parse_vary("seed=[1.5]")
    with pytest.raises(ConfigError, match="1 is not true or false"):
        parse_vary("contrast=[1]")  # JSON 1 is a number, as in a config file
    assert parse_vary("contrast=yes,off") == ("contrast", (True, False))
    assert parse_vary("lr=[1]") == ("lr", (1.0,))
    assert parse_vary("threshold=[null,0.5]") == ("threshold", (None, 0.5))
    assert parse_vary("output_size=[64]") == ("output_size", ("64",))  # text that may be given as a number
