"""`clipopt eval` end to end with the tiny checkpoints: metadata in, table, JSON and CSV out."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tiny
from click.testing import CliRunner
from PIL import Image
from scipy import stats as scipy_stats
from test_batch_support import EXAMPLES, tiny_flags

from clipstyler_opt.cli import cli, main
from clipstyler_opt.evaluate import DIRECTIONS, METRICS, Metric, MetricUnavailable, registry
from clipstyler_opt.evaluate.registry import Sample
from clipstyler_opt.report import load_results

PROMPTS = ("starry night", "red")


def invoke(*args: Any) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def scorer_flags(paths: dict[str, Path]) -> list[str]:
    """The tiny CLIP (the very backbone that optimised the outputs) as scorer, and the tiny VGG."""
    return ["--scorer", f"{tiny.TINY_CLIP_NAME}/openai:file={paths['clip_checkpoint']}",
            "--clip-model-config", str(paths["clip_model_config"]), "--vgg-checkpoint", str(paths["vgg_checkpoint"]),
            "--offline", "--device", "cpu", "--patch-crops", "8"]


@pytest.fixture(scope="module")
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLIPOPT_CACHE_DIR", str(tmp_path_factory.mktemp("hash-cache")))
        yield


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, tiny_paths: dict[str, Path], private_cache: None) -> Path:
    """One `clipopt run` output of chelsea.png, 2 steps with the tiny weights."""
    out = tmp_path_factory.mktemp("run") / "cat.png"
    assert main(["run", str(EXAMPLES / "chelsea.png"), PROMPTS[0], "-o", str(out), "-q",
                 *tiny_flags(tiny_paths)]) == 0
    return out


@pytest.fixture(scope="module")
def batch_folder(tmp_path_factory: pytest.TempPathFactory, tiny_paths: dict[str, Path], private_cache: None) -> Path:
    """`clipopt batch` of two photos x two prompts."""
    base = tmp_path_factory.mktemp("batch")
    (base / "photos").mkdir()
    for name in ("chelsea.png", "coffee.png"):
        shutil.copy(EXAMPLES / name, base / "photos" / name)
    assert main(["batch", str(base / "photos"), "-p", PROMPTS[0], "-p", PROMPTS[1], "-o", str(base / "out"), "-q",
                 *tiny_flags(tiny_paths)]) == 0
    return base / "out"


def copy_output(made: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path in (made, made.with_name(made.name + ".json")):
        shutil.copy(path, folder / path.name)
    return folder / made.name


def assert_every_null_has_a_reason(row: dict[str, Any]) -> None:
    assert list(row["metrics"]) == [metric.name for metric in registry.metrics()]
    assert list(row["metrics"])[:len(METRICS)] == list(METRICS)
    for metric, value in row["metrics"].items():
        assert (value is None) == (metric in row["unavailable"]), metric


def test_eval_reads_content_and_prompt_from_metadata_and_flags_the_same_scorer(
        made: Path, tiny_paths: dict[str, Path], tmp_path: Path) -> None:
    result = invoke("eval", made, *scorer_flags(tiny_paths), "--json", tmp_path / "e.json", "--csv", tmp_path / "e.csv")
    assert result.exit_code == 0, result.output
    assert "also optimised" in result.output  # the warning on the terminal
    header = next(line for line in result.output.splitlines() if line.startswith("output"))
    assert "clip_score ↑" in header and "vgg_content_distance ↓" in header
    document = json.loads((tmp_path / "e.json").read_text())
    sidecar = json.loads(made.with_name(made.name + ".json").read_text())
    [row] = document["rows"]
    assert row["content"] == str(EXAMPLES / "chelsea.png") and row["prompt"] == PROMPTS[0]
    assert row["scorer_was_optimiser"] is True and any("also optimised" in w for w in document["warnings"])
    assert document["directions"] == DIRECTIONS and document["scorer"]["weights_sha256"]
    # The scorer sees the whole image squashed (no centre crop), whatever open_clip's config says.
    assert document["scorer"]["preprocess"]["resize_mode"] == "squash"
    assert document["scorer"]["preprocess"]["model_resize_mode"] == "shortest"  # open_clip's default
    assert_every_null_has_a_reason(row)
    metrics = row["metrics"]
    # Independent checks: with the optimiser as scorer and the same VGG, these are the run's own final
    # losses, which it computed on the image before it was rounded to 8 bits.
    assert metrics["vgg_content_distance"] == pytest.approx(sidecar["losses"]["content"], rel=0.02)
    assert metrics["directional_similarity"] == pytest.approx(1.0 - sidecar["losses"]["dir"], abs=0.01)
    assert -1.0 <= metrics["clip_score"] <= 1.0 and -1.0 <= metrics["ssim"] <= 1.0
    assert metrics["gram_distance"] is None and "not applicable" in row["unavailable"]["gram_distance"]
    assert metrics["lpips"] is None and row["unavailable"]["lpips"]
    overall = document["summary"]["overall"]["ssim"]
    assert overall["n"] == 1 and overall["ci_low"] == overall["mean"] == overall["ci_high"] == metrics["ssim"]
    with open(tmp_path / "e.csv", newline="") as fh:
        [csv_row] = list(csv.DictReader(fh))
    assert float(csv_row["ssim"]) == metrics["ssim"] and csv_row["lpips"] == ""
    assert csv_row["scorer_was_optimiser"] == "true"


def test_default_scorer_is_never_the_optimiser(made: Path, tiny_paths: dict[str, Path], tmp_path: Path) -> None:
    vgg = ["--vgg-checkpoint", tiny_paths["vgg_checkpoint"], "--offline", "--device", "cpu"]
    result = invoke("eval", made, *vgg)  # optimised by the tiny model: the default ViT-B-16 is looked for
    assert result.exit_code == 4 and "ViT-B-16/openai not found offline" in result.output, result.output
    assert "pass --scorer ViT-B-16/openai:file=FILE" in result.output and "--clip-checkpoint" not in result.output
    output = copy_output(made, tmp_path / "b16")
    sidecar_path = output.with_name(output.name + ".json")
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["backbones"] = [{"model": "ViT-B-16", "pretrained": "openai", "spec": "ViT-B-16/openai"}]
    sidecar_path.write_text(json.dumps(sidecar))
    result = invoke("eval", output, *vgg)
    assert result.exit_code == 4 and "ViT-B-32-quickgelu/openai not found offline" in result.output, result.output
    assert not (tmp_path / "b16" / "eval.json").exists()


def test_without_metadata_content_and_prompt_must_be_given(made: Path, tiny_paths: dict[str, Path],
                                                           tmp_path: Path) -> None:
    bare = tmp_path / "bare.png"
    with Image.open(made) as image:
        image.convert("RGB").save(bare)  # the pixels only: no text chunk, no sidecar
    result = invoke("eval", bare, *scorer_flags(tiny_paths))
    assert result.exit_code == 3 and "pass --content and --prompt" in result.output
    style = EXAMPLES / "astronaut.png"
    result = invoke("eval", bare, "--content", EXAMPLES / "chelsea.png", "--prompt", PROMPTS[0], "--style-image", style,
                    *scorer_flags(tiny_paths), "--json", tmp_path / "e.json")
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "e.json").read_text())
    [row] = document["rows"]
    assert row["scorer_was_optimiser"] is None and any("unknown" in w for w in document["warnings"])
    assert row["metrics"]["gram_distance"] is not None and row["metrics"]["gram_distance"] > 0
    assert_every_null_has_a_reason(row)


def test_batch_folder_gets_an_eval_json_the_report_reads(batch_folder: Path, tiny_paths: dict[str, Path]) -> None:
    result = invoke("eval", batch_folder, *scorer_flags(tiny_paths))
    assert result.exit_code == 0, result.output
    document = json.loads((batch_folder / "eval.json").read_text())
    results = load_results(batch_folder)
    assert results.evaluation is not None and len(results.outputs) == 4
    for output in results.outputs:
        for metric in ("clip_score", "directional_similarity", "patch_clip_score", "ssim", "vgg_content_distance",
                       "edge_correlation"):
            assert results.evaluation.value(output, metric) is not None, (output.relative, metric)
    assert sorted(row["output"] for row in document["rows"]) == sorted(o.relative for o in results.outputs)
    summary = document["summary"]
    assert summary["overall"]["ssim"]["n"] == 4 and set(summary["per_prompt"]) == set(PROMPTS)
    for prompt in PROMPTS:
        entry = summary["per_prompt"][prompt]["ssim"]
        rows = [row for row in document["rows"] if row["prompt"] == prompt]
        values = [row["metrics"]["ssim"] for row in rows]
        assert entry["n"] == 2 and entry["mean"] == pytest.approx(sum(values) / 2)
        # two content images, one output each: the textbook t-interval, 1 degree of freedom (scipy's t)
        assert len({row["content"] for row in rows}) == entry["n_clusters"] == 2
        half = scipy_stats.t.ppf(0.975, 1) * abs(values[0] - values[1]) / 2
        assert (entry["ci_low"], entry["ci_high"]) == pytest.approx((entry["mean"] - half, entry["mean"] + half))
    assert "prompt 'red'" in result.output and f"wrote {batch_folder / 'eval.json'}" in result.output


def test_bad_requests_are_one_line_errors_and_write_nothing(made: Path, tiny_paths: dict[str, Path],
                                                            tmp_path: Path) -> None:
    flags = scorer_flags(tiny_paths)
    same = tmp_path / "x.json"
    result = invoke("eval", made, *flags, "--json", same, "--csv", same)
    assert result.exit_code == 2 and "same file" in result.output
    content = EXAMPLES / "chelsea.png"
    before = content.read_bytes()
    result = invoke("eval", made, *flags, "--json", content)
    assert result.exit_code == 2 and "refusing to overwrite" in result.output and content.read_bytes() == before
    assert invoke("eval", tmp_path / "missing.png", *flags).exit_code == 3
    assert invoke("eval", tmp_path, *flags).exit_code == 2  # a folder without a manifest
    result = invoke("eval", made, "--scorer", "no-such-model/xyz", "--offline", "--device", "cpu")
    assert result.exit_code == 2 and "unknown model 'no-such-model'" in result.output, result.output
    flags[1] = "not a spec!"
    result = invoke("eval", made, *flags)
    assert result.exit_code == 2 and "backbone spec" in result.output
    result = invoke("eval", made, *scorer_flags(tiny_paths), "--device", "tpu")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert not same.exists() and not (tmp_path / "eval.json").exists()


def test_csv_text_fields_cannot_run_as_spreadsheet_formulas(made: Path, tiny_paths: dict[str, Path],
                                                             tmp_path: Path) -> None:
    """A prompt (or file name) starting with = + - @ gets a leading single quote in the CSV (OWASP);
    the JSON keeps the text as typed, and numbers stay numbers."""
    output = copy_output(made, tmp_path / "out")
    renamed = output.with_name("-cat.png")
    output.rename(renamed)
    output.with_name(output.name + ".json").rename(renamed.with_name(renamed.name + ".json"))
    prompt = '=SUM(1+2)*cmd starry night'
    result = invoke("eval", renamed, "--prompt", prompt, *scorer_flags(tiny_paths),
                    "--csv", tmp_path / "e.csv", "--json", tmp_path / "e.json")
    assert result.exit_code == 0, result.output
    with open(tmp_path / "e.csv", newline="", encoding="utf-8") as fh:
        [row] = list(csv.DictReader(fh))
    assert row["prompt"] == "'" + prompt
    assert json.loads((tmp_path / "e.json").read_text())["rows"][0]["prompt"] == prompt
    assert not row["output"].startswith(("=", "+", "-", "@"))
    assert float(row["ssim"]) == json.loads((tmp_path / "e.json").read_text())["rows"][0]["metrics"]["ssim"]


def test_a_metric_is_one_registry_entry(made: Path, tiny_paths: dict[str, Path], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def mean_red(sample: Sample) -> float:
        return float(sample.output[:, 0].mean())

    def never(sample: Sample) -> float:
        raise MetricUnavailable("needs a tripod")

    for metric in (Metric("mean_red", "higher", "content", ("content image",), mean_red, "never", "mean of R"),
                   Metric("steadiness", "lower", "content", ("content image",), never, "always", "camera shake")):
        monkeypatch.setitem(registry._REGISTRY, metric.name, metric)
    result = invoke("eval", made, *scorer_flags(tiny_paths), "--json", tmp_path / "e.json", "--csv", tmp_path / "e.csv")
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "e.json").read_text())
    [row] = document["rows"]
    with Image.open(made) as image:  # independent: the saved pixels' red channel
        red = float(np.asarray(image.convert("RGB"), dtype=np.float64)[..., 0].mean() / 255)
    assert row["metrics"]["mean_red"] == pytest.approx(red, abs=1e-6)
    assert row["metrics"]["steadiness"] is None and row["unavailable"]["steadiness"] == "needs a tripod"
    assert document["directions"]["mean_red"] == "higher" and document["directions"]["steadiness"] == "lower"
    assert document["summary"]["overall"]["mean_red"]["mean"] == row["metrics"]["mean_red"]
    header = next(line for line in result.output.splitlines() if line.startswith("output"))
    assert "mean_red ↑" in header and "steadiness ↓" in header
    assert any(line.strip().startswith("steadiness ↓") and line.endswith("n/a: needs a tripod")
               for line in result.output.splitlines())
    with open(tmp_path / "e.csv", newline="") as fh:
        [csv_row] = list(csv.DictReader(fh))
    assert float(csv_row["mean_red"]) == row["metrics"]["mean_red"] and csv_row["steadiness"] == ""


@pytest.mark.parametrize("side", [5, 1])
def test_eval_of_a_tiny_image_is_null_ssim_with_a_reason(tiny_paths: dict[str, Path], tmp_path: Path,
                                                         side: int) -> None:
    output, content = tmp_path / "tiny.png", tmp_path / "content.png"
    Image.new("RGB", (side, side), (200, 30, 30)).save(output)
    Image.new("RGB", (side, side), (30, 30, 200)).save(content)
    result = invoke("eval", output, "--content", content, "--prompt", "red", *scorer_flags(tiny_paths),
                    "--json", tmp_path / "e.json")
    assert result.exit_code == 0, result.output
    [row] = json.loads((tmp_path / "e.json").read_text())["rows"]
    assert row["metrics"]["ssim"] is None and f"{side} px a side" in row["unavailable"]["ssim"]
    assert row["metrics"]["vgg_content_distance"] is None and row["metrics"]["gram_distance"] is None
    assert_every_null_has_a_reason(row)
