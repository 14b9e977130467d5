"""`run --from OUT` round trips: the re-run's pixels are the first run's, for each option that
changes how an output is made (a preset, `--fusion losses`, a style image, `--output-size`,
`--keep-colors --contrast`), each checked to have taken effect in the first run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES
from PIL import Image

from clipstyler_opt.cli import cli


def _run(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _record(path: Path) -> dict[str, Any]:
    return json.loads(path.with_name(path.name + ".json").read_text())


CASES = {
    # --crops 64 given at its default value wins over the preset's 32; the re-run must keep it so.
    "preset": (["--preset", "fast", "--crops", "64"], "starry night",
               lambda image, record: record["preset"] == {"name": "fast", "applied": {"lr_decay_every": 50}}
               and record["settings"]["crops"] == 64),
    "fusion-losses": (["--fusion", "losses"], "starry night:0.7 | ukiyo-e woodblock print:0.3",
                      lambda image, record: record["settings"]["fusion"] == "losses"),
    "style-image": (["--style-image", f"{EXAMPLES / 'astronaut.png'}:0.5"], "oil painting",
                    lambda image, record: "astronaut.png" in json.dumps(record["settings"]["style_image"])),
    "output-size": (["--output-size", "100"], "starry night", lambda image, record: max(image.shape[:2]) == 100),
    "keep-colors-contrast": (["--keep-colors", "--contrast"], "starry night",
                             lambda image, record: record["settings"]["keep_colors"] is True
                             and record["settings"]["contrast"] is True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_run_from_reproduces_the_pixels(case: str, tmp_path: Path, photo: Path, tiny_cli_args: list[str]) -> None:
    options, prompt, took_effect = CASES[case]
    first, again = tmp_path / "first.png", tmp_path / "again.png"
    _run(["run", str(photo), prompt, "-o", str(first), "--seed", "3", *tiny_cli_args, *options, "-q"])
    _run(["run", "--from", str(first), "-o", str(again), "-q"])
    recorded = _record(first)
    assert took_effect(_pixels(first), recorded), case
    assert _pixels(again).shape == _pixels(first).shape
    assert np.array_equal(_pixels(again), _pixels(first)), case
    assert _record(again)["settings_hash"] == recorded["settings_hash"]
    assert _record(again)["prompt"] == prompt


def test_run_from_with_every_option_at_once(tmp_path: Path, photo: Path, tiny_cli_args: list[str]) -> None:
    first, again, twice = tmp_path / "first.png", tmp_path / "again.png", tmp_path / "twice.png"
    options = [option for case in CASES.values() for option in case[0]]
    _run(["run", str(photo), "starry night:0.7 | ukiyo-e woodblock print:0.3", "-o", str(first), "--seed", "4",
          *tiny_cli_args, *options, "-q"])
    _run(["run", "--from", str(first), "-o", str(again), "-q"])
    _run(["run", "--from", str(again), "-o", str(twice), "-q"])  # a re-run of a re-run
    assert np.array_equal(_pixels(again), _pixels(first)) and np.array_equal(_pixels(twice), _pixels(first))
    assert max(_pixels(first).shape[:2]) == 100
