"""Config files: strict TOML types; weights files identified by their bytes in the settings hash."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from clipstyler_opt import StyleConfig
from clipstyler_opt.cli import cli
from clipstyler_opt.core.config_files import load_toml
from clipstyler_opt.core.digests import clear_memory_cache
from clipstyler_opt.core.errors import ConfigError

OLD_NS = 1_600_000_000 * 10**9  # a fixed modification time well in the past


@pytest.fixture(autouse=True)
def own_hash_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIPOPT_CACHE_DIR", str(tmp_path / "hash-cache"))
    clear_memory_cache()


# --- strict types, through the command line (fails while parsing, before any weights load) ---

@pytest.mark.parametrize(("line", "expected"), [
    ("size = 600.7", "size must be an integer, got 600.7 (a float)"),
    ("size = true", "size must be an integer, got true (a boolean)"),
    ("steps = [1, 2]", "steps must be an integer, got [1, 2] (an array)"),
    ("contrast = 1", "contrast must be true or false, got 1 (an integer)"),
    ("clip_checkpoint = 5", "clip_checkpoint must be a path (a string), got 5 (an integer)"),
    ("lambda-content = false", "lambda-content must be a number, got false (a boolean)"),
    ('lr = "0.1"', 'lr must be a number, got "0.1" (a string)'),
    ("source-text = 3", "source-text must be a string, got 3 (an integer)"),
    ("seed = 1979-05-27", "seed must be an integer, got 1979-05-27 (a date/time)"),
])
def test_a_value_of_the_wrong_type_is_a_usage_error(tmp_path: Path, photo: Path, line: str, expected: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(line + "\n")
    result = CliRunner().invoke(cli, ["run", str(photo), "x", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [f"error: {config}: {expected}"]


def test_an_integer_is_a_valid_float_and_types_that_fit_pass(tmp_path: Path) -> None:
    config = tmp_path / "good.toml"
    config.write_text('lr = 1\nlambda-tv = 0.5\nsize = 64\ncontrast = true\nvgg-checkpoint = "w.pth"\n'
                      'source_text = "a photo"\n')
    values = load_toml(config, StyleConfig.field_names())
    assert values == {"lr": 1, "lambda_tv": 0.5, "size": 64, "contrast": True, "vgg_checkpoint": "w.pth",
                      "source_text": "a photo"}


@pytest.mark.parametrize(("value", "hint", "expected"), [
    (["a", "b"], tuple[str, ...], None),
    ("a", tuple[str, ...], None),  # one item alone, as for a repeatable option on the command line
    (["a", 3], tuple[str, ...], "a string or an array of them"),
    (0.5, float | None, None),
    (True, float | None, "a number"),
    ("w.pth", Path | None, None),
    (["w.pth"], Path | None, "a path (a string)"),
    ({"a": 1}, int, "an integer"),
])
def test_type_rules_for_optional_and_repeatable_fields(value: object, hint: object, expected: str | None) -> None:
    from clipstyler_opt.core.coercion import type_mismatch

    assert type_mismatch(value, hint) == expected


def test_a_key_given_in_both_spellings_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "twice.toml"
    config.write_text("lambda-content = 1\nlambda_content = 2\n")
    with pytest.raises(ConfigError, match="lambda-content is given twice"):
        load_toml(config, StyleConfig.field_names())


def test_keys_that_are_not_style_fields_are_left_to_the_command(tmp_path: Path) -> None:
    config = tmp_path / "batch.toml"
    config.write_text('inputs = ["a", "b"]\nprompt = "x"\nrecursive = true\nsteps = 3\n')
    values = load_toml(config, ("inputs", "prompt", "recursive", "steps"))
    assert values == {"inputs": ["a", "b"], "prompt": "x", "recursive": True, "steps": 3}


# --- weights files in the settings: name + sha256 of the bytes ---

def write(path: Path, data: bytes, mtime_ns: int = OLD_NS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def test_same_name_and_size_but_other_bytes_change_the_settings_hash(tmp_path: Path) -> None:
    first = write(tmp_path / "a" / "vgg.pth", b"weights one")
    second = write(tmp_path / "b" / "vgg.pth", b"weights two")
    assert first.stat().st_size == second.stat().st_size
    assert StyleConfig(vgg_checkpoint=first).settings_hash("p") != StyleConfig(vgg_checkpoint=second).settings_hash("p")


def test_a_file_rewritten_in_place_with_the_same_size_changes_the_settings_hash(tmp_path: Path) -> None:
    path = write(tmp_path / "vgg.pth", b"weights one")
    before = StyleConfig(vgg_checkpoint=path).settings_hash("p")
    write(path, b"weights two", mtime_ns=OLD_NS + 10**9)  # a rerun later: same name, same size
    assert StyleConfig(vgg_checkpoint=path).settings_hash("p") != before


def test_the_same_bytes_elsewhere_keep_the_settings_hash(tmp_path: Path) -> None:
    here = write(tmp_path / "here" / "vgg.pth", b"the weights")
    there = write(tmp_path / "there" / "vgg.pth", b"the weights", mtime_ns=OLD_NS + 5)
    assert StyleConfig(vgg_checkpoint=here).settings_hash() == StyleConfig(vgg_checkpoint=there).settings_hash()


def test_the_settings_record_the_file_name_and_its_sha256(tmp_path: Path) -> None:
    path = write(tmp_path / "clip.safetensors", b"abc")
    # SHA-256("abc") from FIPS 180-2, appendix B.1
    digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert hashlib.sha256(b"abc").hexdigest() == digest
    settings = StyleConfig(clip_checkpoint=path).output_settings()
    # --clip-checkpoint is the default backbone's file= (the two spellings hash alike)
    assert settings["backbone"][0]["file"] == f"clip.safetensors (sha256 {digest})"
    assert "clip_checkpoint" not in settings and settings["vgg_checkpoint"] is None
    spelled_as_spec = StyleConfig(backbone=f"ViT-B-32-quickgelu/openai:file={path}")
    assert spelled_as_spec.settings_hash() == StyleConfig(clip_checkpoint=path).settings_hash()


def test_an_unreadable_file_never_matches_a_recorded_hash(tmp_path: Path) -> None:
    folder = tmp_path / "vgg.pth"
    folder.mkdir()
    assert StyleConfig(vgg_checkpoint=folder).output_settings()["vgg_checkpoint"] == "vgg.pth (unreadable)"
