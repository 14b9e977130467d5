"""Where the time before the first step goes, as `clipopt run` pays it: measured in a fresh
Python process, split into imports, weight loading, text setup and the rest of the setup.

`measure_startup` runs the process twice with the same, initially empty, text cache: the first
run encodes the prompt's and the source text's template prompts; the second reads them from the
disk cache, as a second `clipopt run` with a prompt already seen on the machine does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipstyler_opt.core.config import StyleConfig, model_fields
from clipstyler_opt.core.errors import ClipoptError

__all__ = ["STARTUP_FIELDS", "StartupRow", "measure_startup"]

# The config fields that decide what a start-up costs; they travel to the measuring process: those
# that decide which models load, and those that shape the setup before the first step (not compile:
# it acts in the first step, not before).
STARTUP_FIELDS = (*model_fields(), "precision", "size", "crops", "crop_size", "preset")
PROBE_MODULE = "clipstyler_opt.cli.startup_probe"  # the measuring process: cli/startup_probe.py
# The repeatable ones among them, with the type of one item (JSON carries them as lists of text).
TUPLE_FIELDS = {name: Path if StyleConfig.field_meta(name).get("path") else str
                for name in STARTUP_FIELDS if StyleConfig.field_meta(name).get("multiple")}


@dataclass
class StartupRow:
    prompt: str  # "first" or "repeated"
    imports_s: float  # torch, open_clip, the package and its command line, in a fresh interpreter
    weights_s: float  # Stylizer(): finding, hashing and loading every backbone's and VGG's weights
    text_s: float  # text embeddings of the style and source texts over their templates
    other_setup_s: float  # the rest before the first step: content references, crops, the U-Net
    text_cache_entries: tuple[int, int]  # files in the text cache before and after the text setup

    @property
    def to_first_step_s(self) -> float:
        return self.imports_s + self.weights_s + self.text_s + self.other_setup_s


def measure_startup(fields: dict[str, Any], image: Path, prompt: str) -> list[StartupRow]:
    """Two fresh processes (first prompt, repeated prompt) sharing a new, empty text cache."""
    from clipstyler_opt.core.files import scratch_folder

    with scratch_folder("clipopt-startup-") as cache:
        env = {**os.environ, "CLIPOPT_CACHE_DIR": str(cache), "CLIPOPT_TEXT_CACHE": "1"}
        request = json.dumps({"fields": {k: _jsonable(v) for k, v in fields.items()}, "image": str(image),
                              "prompt": prompt})
        rows = []
        for label in ("first", "repeated"):
            done = subprocess.run([sys.executable, "-m", PROBE_MODULE], input=request, capture_output=True, text=True,
                                  env=env, check=False)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                error = ClipoptError(f"the start-up measurement failed: {last}")
                error.exit_code = done.returncode if 0 < done.returncode < 128 else error.exit_code
                raise error
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(StartupRow(label, measured["imports_s"], measured["weights_s"], measured["text_s"],
                                   measured["other_setup_s"], tuple(measured["text_cache_entries"])))
    return rows


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return str(value) if isinstance(value, Path) else value
