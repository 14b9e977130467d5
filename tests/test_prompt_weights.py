"""Sweeping a prompt's weights: `--vary mix=...` (two parts: 1 - m, m) and `--vary weights=W1/W2/...`;
what each cell runs and records, refusals before any work, and `analyze` curves along mix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from PIL import Image
from toy import register_toy

from clipstyler_opt import StyleConfig
from clipstyler_opt.analysis.folder import _observations, numeric_settings
from clipstyler_opt.analysis.probes import TextSpace, recognition_probe, response_probe
from clipstyler_opt.batch import InputFile, build_sweep_jobs, derive_seed, expand_grid, parse_vary
from clipstyler_opt.cli import main
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.naming import prompt_slug
from clipstyler_opt.core.styles import StyleSpec
from clipstyler_opt.report import load_results

LEGACY = Path(__file__).parent / "data" / "legacy"
TOY = ["--backbone", "toy-colour", "--templates", "none", "--size", "32", "--steps", "1", "--crops", "1",
       "--crop-size", "16", "--device", "cpu", "--precision", "fp32",
       "--vgg-checkpoint", str(LEGACY / "identity-vgg19.pth"), "-q"]


def _jobs(prompt: str, vary: str) -> list:  # type: ignore[type-arg]
    item = InputFile(LEGACY / "inputs" / "cat.png", LEGACY / "inputs", PurePosixPath("cat.png"))
    cells = expand_grid(StyleConfig(), [parse_vary(vary)])
    return build_sweep_jobs([item], [prompt], Path("out"), cells, StyleConfig())


def test_values_are_read_and_bad_ones_refused() -> None:
    assert parse_vary("mix=0,0.25,0.5,0.75,1") == ("mix", (0.0, 0.25, 0.5, 0.75, 1.0))
    assert parse_vary("weights=0.2/0.3/0.5,1/0/0") == ("weights", ((0.2, 0.3, 0.5), (1.0, 0.0, 0.0)))
    assert parse_vary("weights=[[0.5, 0.5]]") == ("weights", ((0.5, 0.5),))
    for text, message in (("mix=1.5", "not in \\[0, 1\\]"), ("mix=abc", "'abc' is not a number"),
                          ("weights=0/0", "are all 0"), ("weights=0.5/x", "'x' is not a number")):
        with pytest.raises(ConfigError, match=message):
            parse_vary(text)
    with pytest.raises(ConfigError, match="both set the prompts' weights"):
        expand_grid(StyleConfig(), [parse_vary("mix=0,1"), parse_vary("weights=1/1")])


def test_a_mix_cell_runs_the_prompt_with_weights_1_minus_m_and_m_in_the_same_prompt_folder() -> None:
    jobs = _jobs("starry night | ukiyo-e:3", "mix=0,0.25,1")
    # By hand: part 1 gets 1 - m, part 2 gets m (the typed weight 3 is replaced); weight 0 drops the part.
    assert [job.run_prompt for job in jobs] == ["starry night", "starry night:0.75 | ukiyo-e:0.25", "ukiyo-e"]
    slug = prompt_slug("starry night | ukiyo-e:3")
    assert [job.output_name for job in jobs] == [f"mix={m}/{slug}/cat.png" for m in ("0", "0.25", "1")]
    assert {job.seed for job in jobs} == {derive_seed(0, "cat.png", "starry night | ukiyo-e:3")}
    assert {job.prompt for job in jobs} == {"starry night | ukiyo-e:3"}
    assert jobs[1].extra_metadata()["sweep"]["prompt"] == {
        "declared": "starry night | ukiyo-e:3", "parts": ["starry night", "ukiyo-e"], "weights": [0.75, 0.25],
        "effective": "starry night:0.75 | ukiyo-e:0.25"}
    assert jobs[0].config(StyleConfig()) == StyleConfig()  # mix is not a setting of the run


def test_weights_give_one_weight_per_part_and_a_typed_zero_stays_refused() -> None:
    jobs = _jobs("red | green | blue", "weights=0.2/0.3/0.5,0/1/1")
    assert [job.run_prompt for job in jobs] == ["red:0.2 | green:0.3 | blue:0.5", "green | blue"]
    assert [job.cell.id for job in jobs] == ["weights=0.2+0.3+0.5", "weights=0+1+1"]
    assert jobs[1].extra_metadata()["sweep"]["prompt"]["weights"] == [0.0, 1.0, 1.0]
    with pytest.raises(ConfigError, match="weight is 0; drop the part instead"):
        StyleSpec.parse("red:0 | blue")


@pytest.mark.parametrize(("prompts", "vary", "message"), [
    (["green | blue", "red"], "mix=0,1", "prompt 'red': has 1 part but 2 weights were given (1/0)"),
    (["a | b | c", "red | blue"], "weights=1/1/1", "prompt 'red | blue': has 2 parts but 3 weights were given"),
    (["red | blue"], "weights=1/-1", "prompt 'red | blue': style weights 1, -1 sum to 0"),
])
def test_a_prompt_that_does_not_fit_exits_2_naming_it_before_any_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], prompts: list[str], vary: str, message: str) -> None:
    out = tmp_path / "out"
    given = [arg for prompt in prompts for arg in ("-p", prompt)]
    assert main(["sweep", str(LEGACY / "inputs"), *given, "--vary", vary, "-o", str(out), *TOY]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not out.exists()


def test_a_mix_sweep_records_what_each_cell_ran_and_resumes(tmp_path: Path) -> None:
    register_toy()
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(LEGACY / "inputs" / "cat.png", inputs / "cat.png")
    out = tmp_path / "out"
    args = ["sweep", str(inputs), "-p", "red | blue", "--vary", "mix=0,0.5", "-o", str(out), *TOY]
    assert main(args) == 0
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    jobs = [r for r in records if r["record"] == "job"]
    expected = {"0": ([1.0, 0.0], "red"), "0.5": ([0.5, 0.5], "red:0.5 | blue:0.5")}
    for job in jobs:
        weights, effective = expected[job["output"].split("/")[0].removeprefix("mix=")]
        sidecar = json.loads((out / (job["output"] + ".json")).read_text())
        entry = {"declared": "red | blue", "parts": ["red", "blue"], "weights": weights, "effective": effective}
        assert sidecar["sweep"]["prompt"] == entry and job["sweep"]["prompt"] == entry
        assert sidecar["prompt"] == effective and job["prompt"] == "red | blue"
    assert main(args) == 0  # resume: each cell's settings hash is of the prompt it ran
    last = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()][-3:-1]
    assert [r["status"] for r in last] == ["skipped", "skipped"]
    folder = load_results(out)
    assert {o.prompt for o in folder.outputs} == {"red | blue"}  # grouped by the declared prompt
    assert sorted(o.effective_prompt for o in folder.outputs) == ["red", "red:0.5 | blue:0.5"]


RED, BLUE = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])


class _MeanColour:
    """A scorer whose image embedding is the normalised mean colour of the file."""

    def image(self, path: Path) -> np.ndarray:
        with Image.open(path) as image:
            mean = np.asarray(image.convert("RGB"), dtype=np.float64).mean(axis=(0, 1)) / 255.0
        return mean / np.linalg.norm(mean)


def _mix_folder(root: Path, levels: tuple[float, ...]) -> Path:
    """A hand-written mix-sweep folder: the output of cell m is the colour (1 - m)·red + m·blue
    over a grey content image, so the response along mix is known by construction."""
    content = root / "grey.png"
    Image.fromarray(np.full((4, 4, 3), 128, dtype=np.uint8)).save(content)
    out = root / "sweep"
    lines = []
    for m in levels:
        relative = f"mix={m:g}/red-blue/grey.png"
        colour = (1 - m) * RED + m * BLUE + 0.1
        (out / relative).parent.mkdir(parents=True)
        Image.fromarray(np.full((4, 4, 3), np.round(colour * 200), dtype=np.uint8)).save(out / relative)
        effective = str(StyleSpec.parse("red | blue").reweighted((1 - m, m)))
        sweep = {"cell": f"mix={m:g}", "values": {"mix": m}, "labels": {"mix": f"{m:g}"},
                 "prompt": {"declared": "red | blue", "parts": ["red", "blue"], "weights": [1 - m, m],
                            "effective": effective}}
        (out / (relative + ".json")).write_text(json.dumps({
            "prompt": effective, "seed": 1, "settings": {}, "sweep": sweep,
            "input": {"source": str(content), "sha256": "0" * 64, "size": [4, 4]}}))
        lines.append({"record": "job", "status": "done", "input": str(content), "relative": "grey.png",
                      "prompt": "red | blue", "output": relative, "seed": 1, "settings_hash": "x"})
    (out / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return out


def test_analysis_fits_one_curve_per_part_along_mix_over_the_declared_prompt(tmp_path: Path) -> None:
    levels = (0.0, 0.25, 0.5, 0.75, 1.0)
    folder = load_results(_mix_folder(tmp_path, levels))
    assert numeric_settings(folder) == ["mix"]
    observations, notes = _observations(folder.outputs, _MeanColour(), ["mix"])  # type: ignore[arg-type]
    assert notes == [] and {o.declared_prompt for o in observations} == {"red | blue"}
    weights = {o.settings["mix"]: dict(o.parts) for o in observations}
    assert weights[0.0] == {"red": 1.0, "blue": 0.0} and weights[0.75] == {"red": 0.25, "blue": 0.75}
    space = TextSpace({}, {"red": RED, "blue": BLUE}, {})
    curves = response_probe(observations, space, "mix")
    assert isinstance(curves, dict) and {"red", "blue"} <= set(curves)
    for text, sign in (("blue", 1.0), ("red", -1.0)):
        cos = curves[text]["cos"]
        assert [row["x"] for row in cos["levels"]] == list(levels)  # every level, weight-0 ends included
        assert sign * (cos["levels"][-1]["mean"] - cos["levels"][0]["mean"]) > 0.5
    recognised = recognition_probe([o for o in observations if o.settings["mix"] != 0.5], space)
    assert isinstance(recognised, dict) and recognised["top1"] == 1.0  # the part of the largest weight wins


def test_along_weights_each_part_runs_along_its_own_weight() -> None:
    from clipstyler_opt.analysis.probes import Observation

    grey = np.ones(3) / np.sqrt(3)
    observations = []
    for i, (r, b) in enumerate(((0.2, 0.8), (0.5, 0.5), (0.8, 0.2))):
        colour = r * RED + b * BLUE + 0.1
        observations.append(Observation(f"o{i}", "c", "x", (("red", r), ("blue", b)), colour / np.linalg.norm(colour),
                                        grey, f"cell{i}", {}, declared="red | blue", reweighted=True))
    curves = response_probe(observations, TextSpace({}, {"red": RED, "blue": BLUE}, {}), "weights")
    assert isinstance(curves, dict)
    assert [row["x"] for row in curves["red"]["cos"]["levels"]] == [0.2, 0.5, 0.8]
    assert [row["x"] for row in curves["blue"]["cos"]["levels"]] == [0.2, 0.5, 0.8]
    for text in ("red", "blue"):  # more of its own weight, more of its colour
        means = [row["mean"] for row in curves[text]["cos"]["levels"]]
        assert means == sorted(means)
