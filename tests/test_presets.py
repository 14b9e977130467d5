"""--preset: the documented table, applied only to fields not given, resolved in one place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipstyler_opt import StyleConfig
from clipstyler_opt.cli import main
from clipstyler_opt.core.errors import ConfigError

# The README's table (### Presets and early stopping).
FAST = {"steps": 100, "lr_decay_every": 50, "crops": 32}
QUALITY = {"crops": 128}


def method_values(config: StyleConfig) -> dict[str, object]:
    return {name: getattr(config, name) for name in ("steps", "lr_decay_every", "crops", "size", "crop_size", "lr")}


def test_default_is_the_paper_and_sets_nothing() -> None:
    config = StyleConfig()
    assert config.preset == "default" and config.preset_applied == {}
    assert method_values(config) == {"steps": 200, "lr_decay_every": 100, "crops": 64, "size": 512,
                                     "crop_size": 128, "lr": 5e-4}


@pytest.mark.parametrize(("name", "table"), [("fast", FAST), ("quality", QUALITY)])
def test_a_preset_sets_its_table_and_nothing_else(name: str, table: dict[str, int]) -> None:
    config = StyleConfig(preset=name)
    assert config.preset_applied == table
    expected = {**method_values(StyleConfig()), **table}
    assert method_values(config) == expected


def test_values_given_in_the_api_win_over_the_preset() -> None:
    config = StyleConfig(preset="fast", steps=300)
    assert config.steps == 300 and config.preset_applied == {"lr_decay_every": 50, "crops": 32}
    # A value equal to the default counts as given only when named in explicit_fields (the CLI names them).
    assert StyleConfig(preset="fast", steps=200).steps == 100
    named = StyleConfig(preset="fast", steps=200, explicit_fields={"steps"})
    assert named.steps == 200 and "steps" not in named.preset_applied


def test_replace_keeps_given_values_and_lets_a_new_preset_take_over() -> None:
    fast = StyleConfig(preset="fast", steps=200, explicit_fields={"steps"})
    assert fast.replace(seed=3).steps == 200 and fast.replace(seed=3).crops == 32
    quality = fast.replace(preset="quality")
    assert (quality.steps, quality.lr_decay_every, quality.crops) == (200, 100, 128)
    assert StyleConfig(preset="fast").replace(preset="default") == StyleConfig()
    assert StyleConfig(preset="fast").replace(crops=16).crops == 16


def test_the_settings_hash_holds_the_resolved_values_not_the_name() -> None:
    assert StyleConfig(preset="fast").settings_hash("x") == StyleConfig(**FAST).settings_hash("x")
    assert StyleConfig(preset="fast").settings_hash("x") != StyleConfig().settings_hash("x")
    assert StyleConfig(preset="quality").settings_hash("x") != StyleConfig(preset="fast").settings_hash("x")


def test_a_recorded_config_rebuilds_the_same_settings() -> None:
    original = StyleConfig(preset="fast", steps=300, seed=4)
    assert StyleConfig(**original.to_dict()) == original
    assert original.to_dict()["preset"] == "fast" and original.to_dict()["crops"] == 32


def test_an_unknown_preset_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="preset must be one of fast, default, quality"):
        StyleConfig(preset="slow")


def test_the_cli_records_the_preset_and_what_it_set(tiny_cli_args: list[str], photo: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fast.png"
    # tiny_cli_args give --steps 3 and --crops 4, so the preset only sets the learning-rate decay.
    assert main(["run", str(photo), "starry night", *tiny_cli_args, "--preset", "fast", "-o", str(out), "-q"]) == 0
    record = json.loads(out.with_name(out.name + ".json").read_text())
    assert record["preset"] == {"name": "fast", "applied": {"lr_decay_every": 50}}
    assert record["config"]["preset"] == "fast" and record["config"]["lr_decay_every"] == 50
    assert record["settings"]["lr_decay_every"] == 50 and "preset" not in record["settings"]
    assert len(record["history"]) == 3


def test_the_cli_refuses_an_unknown_preset(tiny_cli_args: list[str], photo: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(photo), "x", *tiny_cli_args, "--preset", "slow"]) == 2
    assert "slow" in capsys.readouterr().err


def test_the_cli_keeps_an_option_given_at_its_default_value(tiny_cli_args: list[str], photo: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "fast.png"
    args = ["run", str(photo), "starry night", *tiny_cli_args, "--preset", "fast", "--lr-decay-every", "100"]
    assert main([*args, "-o", str(out), "-q"]) == 0
    record = json.loads(out.with_name(out.name + ".json").read_text())
    assert record["config"]["lr_decay_every"] == 100 and record["preset"]["applied"] == {}
