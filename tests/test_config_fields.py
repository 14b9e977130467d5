"""What configuration fields declare: their role and validation (checked from the metadata), the
types their values really have, and the settings hash of a field added later."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import pytest

from clipstyler_opt.core.config import ROLES, StyleConfig, _term_weight, model_fields
from clipstyler_opt.core.errors import ConfigError


def test_every_field_declares_a_known_role() -> None:
    for f in dataclasses.fields(StyleConfig):
        assert f.metadata["role"] in ROLES, f.name


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(StyleConfig)
                                  if f.type in ("int", "float") and f.name != "seed"])
def test_every_number_field_refuses_nan_or_a_negative_value(name: str) -> None:
    """Numbers reach the engine only after their field's own rules: -1 is never a valid count,
    weight, rate or size, and nan fails every rule."""
    for bad in (-1, float("nan")) if StyleConfig.field_meta(name).get("checks") else ():
        with pytest.raises(ConfigError, match=name.replace("_", "-")):
            StyleConfig(**{name: bad})
    assert StyleConfig.field_meta(name)["checks"], f"{name} declares no validation"


def test_output_size_has_its_declared_type_after_normalising() -> None:
    config = StyleConfig(output_size=1024)
    assert config.output_size == "1024" and isinstance(config.output_size, str)
    assert StyleConfig(output_size=" FULL ").output_size == "full"
    assert StyleConfig(vgg_checkpoint="w.pth").vgg_checkpoint == Path("w.pth")


def test_the_model_fields_are_those_that_load_models() -> None:
    assert set(model_fields()) == {"backbone", "clip_model", "clip_pretrained", "clip_checkpoint",
                                   "clip_model_config", "vgg_checkpoint", "cache_dir", "offline", "device",
                                   "bf16_weights"}


def test_the_config_module_does_not_import_its_checks_back() -> None:
    source = (Path(__file__).parents[1] / "clipstyler_opt" / "core" / "config_checks.py").read_text()
    assert "core.config import" not in source and "core.config " not in source


# --- a field added later leaves the settings hash of runs that keep its default ---

@dataclasses.dataclass(frozen=True)
class WithGlow(StyleConfig):
    """StyleConfig as it would be after adding a loss term's weight in a later version."""

    lambda_glow: float = _term_weight(0.0, "Weight of the glow term.", added_in="0.2")


def _hand_hash(settings: dict[str, object], *extra: str) -> str:
    """The settings hash as documented: sha256 of the JSON of [settings, extras], sorted keys, 16 hex."""
    return hashlib.sha256(json.dumps([settings, list(extra)], sort_keys=True).encode()).hexdigest()[:16]


def test_a_field_added_later_is_left_out_of_the_hash_at_its_default() -> None:
    before = StyleConfig(steps=3).output_settings()  # the settings as the earlier version records them
    assert "lambda_glow" not in before
    assert WithGlow(steps=3).settings_hash("oil") == _hand_hash(before, "oil")
    assert WithGlow(steps=3, lambda_glow=0.5).settings_hash("oil") == _hand_hash({**before, "lambda_glow": 0.5},
                                                                                 "oil")
    with pytest.raises(ConfigError, match="lambda-glow must be 0 or more"):
        WithGlow(lambda_glow=-1.0)
    assert math.isclose(WithGlow(lambda_glow=2.0).lambda_glow, 2.0)


def test_term_weights_by_name_are_left_out_of_the_hash_until_given() -> None:
    before = StyleConfig(steps=3).output_settings()
    assert "term_weight" not in before
    assert StyleConfig(steps=3).settings_hash("oil") == _hand_hash(before, "oil")
    given = StyleConfig(steps=3, term_weight=("glow=0.5",))
    assert given.settings_hash("oil") == _hand_hash({**before, "term_weight": ["glow=0.5"]}, "oil")
