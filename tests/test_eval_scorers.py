"""`clipopt eval` with several scorers, per-part scores and the shared embedding cache, on a copy of
the legacy batch folder (outputs of "red" and "green:0.7 | blue:0.3" made by the toy colour
backbone, whose image embedding is the mean colour and whose colour words are the axes)."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tiny
import torch
import torch.nn.functional as F
from PIL import Image
from test_eval_schema import DATA, MULTI, legacy_batch
from toy import COLOURS, register_toy

from clipstyler_opt.batch.prompt_weights import prompt_record
from clipstyler_opt.cli import main
from clipstyler_opt.evaluate import embeddings, registry

VGG = DATA / "legacy" / "identity-vgg19.pth"
# The metrics scored against each part: those declared as needing a scorer and a style text.
TEXT_METRICS = {m.name for m in registry.metrics() if {"scorer", "style text"} <= set(m.needs)}
FAST = ["--vgg-checkpoint", str(VGG), "--device", "cpu", "--offline", "--patch-crops", "2", "--patch-size", "16", "-q"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tiny_scorer(paths: dict[str, Path]) -> list[str]:
    return ["--scorer", f"tiny={tiny.TINY_CLIP_NAME}:file={paths['clip_checkpoint']}",
            "--clip-model-config", str(paths["clip_model_config"])]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory, tiny_paths: dict[str, Path]) -> tuple[Path, dict[str, Any]]:
    """The legacy batch scored by the toy (first) and the tiny CLIP, with a CSV."""
    register_toy()
    root = legacy_batch(tmp_path_factory.mktemp("scorers"))
    code = main(["eval", str(root), "--scorer", "TOY=toy-colour:templates=none", *tiny_scorer(tiny_paths),
                 "--csv", str(root.parent / "eval.csv"), *FAST])
    assert code == 0
    return root, json.loads((root / "eval.json").read_text())


def mean_colour_view(path: Path) -> np.ndarray:
    """Independent: the image squashed to the toy's 16x16 input (bilinear), averaged per channel."""
    with Image.open(path) as image:
        pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    view = F.interpolate(pixels.double(), size=(16, 16), mode="bilinear", align_corners=False)
    return view.mean(dim=(2, 3))[0].numpy()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_the_part_metrics_are_the_text_metrics() -> None:
    assert {"clip_score", "directional_similarity", "patch_clip_score"} <= TEXT_METRICS
    assert not TEXT_METRICS & {"ssim", "vgg_content_distance", "lpips", "edge_correlation", "gram_distance"}


def test_every_scorer_scores_the_whole_prompt_and_each_part(evaluated: tuple[Path, dict[str, Any]],
                                                             tiny_paths: dict[str, Path]) -> None:
    root, document = evaluated
    assert document["schema_version"] == 2
    toy, small = document["scorers"]
    assert (toy["label"], toy["spec"], toy["weights_sha256"], toy["optimised_outputs"]) == (
        "TOY", "toy-colour:templates=none", None, 4)
    assert small["label"] == "tiny" and small["optimised_outputs"] == 0
    assert small["weights_sha256"] == sha256(tiny_paths["clip_checkpoint"])
    assert document["scorer"]["label"] == "TOY"
    green, blue = np.array(COLOURS["green"]), np.array(COLOURS["blue"])
    for row in document["rows"]:
        assert set(row["scores"]) == {"TOY", "tiny"}
        assert row["scores"]["TOY"]["metrics"]["clip_score"] == row["metrics"]["clip_score"]
        assert row["scores"]["tiny"]["metrics"]["clip_score"] != row["metrics"]["clip_score"]
        assert row["scores"]["TOY"]["scorer_was_optimiser"] is True
        assert row["scores"]["tiny"]["scorer_was_optimiser"] is False
        colour = mean_colour_view(root / row["output"])
        if not row["output"].startswith(MULTI):
            assert row["scores"]["TOY"]["parts"] == [] and "parts_from" not in row
            continue
        assert row["parts_from"] == "prompt"
        for label in ("TOY", "tiny"):
            parts = row["scores"][label]["parts"]
            assert [(p["text"], p["weight"]) for p in parts] == [("green", pytest.approx(0.7)),
                                                                 ("blue", pytest.approx(0.3))]
            assert all(set(p["metrics"]) == TEXT_METRICS for p in parts)
        by_text = {p["text"]: p["metrics"] for p in row["scores"]["TOY"]["parts"]}
        assert by_text["green"]["clip_score"] == pytest.approx(cosine(colour, green), abs=1e-4)
        assert by_text["blue"]["clip_score"] == pytest.approx(cosine(colour, blue), abs=1e-4)
        whole = 0.7 * green + 0.3 * blue
        assert row["metrics"]["clip_score"] == pytest.approx(cosine(colour, whole), abs=1e-4)
    summaries = document["summaries"]
    assert set(summaries) == {"TOY", "tiny"} and set(summaries["tiny"]["parts"]) == {"green", "blue"}
    greens = [p["metrics"]["clip_score"] for row in document["rows"] for p in row["scores"]["tiny"]["parts"]
              if p["text"] == "green"]
    assert summaries["tiny"]["parts"]["green"]["overall"]["clip_score"]["mean"] == pytest.approx(np.mean(greens))
    assert summaries["tiny"]["parts"]["green"]["overall"]["clip_score"]["n"] == 2
    assert "ssim" not in summaries["tiny"]["overall"]


def test_the_report_shows_each_scorer_and_each_part(evaluated: tuple[Path, dict[str, Any]]) -> None:
    from clipstyler_opt.report import load_results

    root, document = evaluated
    evaluation = load_results(root).evaluation
    assert evaluation is not None and [s.label for s in evaluation.scorers] == ["TOY", "tiny"]
    row = next(r for r in document["rows"] if r["output"].startswith(MULTI))
    [green, _] = row["scores"]["TOY"]["parts"]
    assert evaluation.value(row["output"], "clip_score[green]") == green["metrics"]["clip_score"]
    assert evaluation.value(row["output"], "clip_score@tiny") == row["scores"]["tiny"]["metrics"]["clip_score"]
    from clipstyler_opt.report.sections import metrics_section
    from clipstyler_opt.report.tables import metrics_table

    results = load_results(root)
    page = metrics_section(results, metrics_table(results))
    assert "clip_score@tiny" in page and "directional_similarity[blue]" in page
    assert "scored by <b>TOY</b> (it optimised 4 of the outputs)" in page and str(root.parent) not in page


def test_the_csv_has_a_column_per_scorer_metric(evaluated: tuple[Path, dict[str, Any]]) -> None:
    root, document = evaluated
    with open(root.parent / "eval.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    header = list(rows[0])
    assert {"clip_score@TOY", "clip_score@tiny", "patch_clip_score@tiny"} <= set(header)
    assert "ssim@tiny" not in header and header.index("clip_score") < header.index("clip_score@TOY")
    by_output = {row["output"]: row for row in document["rows"]}
    for row in rows:
        expected = by_output[row["output"]]["scores"]["tiny"]["metrics"]["clip_score"]
        assert float(row["clip_score@tiny"]) == expected


def test_a_mix_sweep_is_scored_against_its_declared_parts(tmp_path: Path) -> None:
    """At a mix end the run's prompt is one part; the declared parts, the one of weight 0 too, are
    still scored (sweep.prompt in the sidecar)."""
    register_toy()
    root = legacy_batch(tmp_path)
    sidecar = root / "red-b1f51a51" / "cat.png.json"
    record = json.loads(sidecar.read_text())
    declared = prompt_record("red | blue | green", (2.0, 0.0, 2.0))  # as sweep --vary weights=2/0/2 records it
    assert declared["effective"] == "red:2 | green:2"
    record["prompt"], record["sweep"] = declared["effective"], {"prompt": declared}
    sidecar.write_text(json.dumps(record))
    assert main(["eval", str(root), "--scorer", "toy-colour:templates=none", *FAST]) == 0
    rows = {row["output"]: row for row in json.loads((root / "eval.json").read_text())["rows"]}
    row = rows["red-b1f51a51/cat.png"]
    assert row["parts_from"] == "declared" and row["prompt"] == "red:2 | green:2"
    parts = row["scores"]["toy-colour"]["parts"]
    assert [(p["text"], p["weight"]) for p in parts] == [("red", 0.5), ("blue", 0.0), ("green", 0.5)]
    colour = mean_colour_view(root / row["output"])
    for part in parts:
        expected = cosine(colour, np.array(COLOURS[part["text"]]))
        assert part["metrics"]["clip_score"] == pytest.approx(expected, abs=1e-4), part["text"]
    whole = np.array(COLOURS["red"]) + np.array(COLOURS["green"])
    assert row["metrics"]["clip_score"] == pytest.approx(cosine(colour, whole), abs=1e-4)
    assert rows["red-b1f51a51/cup.png"]["scores"]["toy-colour"]["parts"] == []


def test_a_csv_of_a_sweep_has_a_column_per_varied_setting(tmp_path: Path) -> None:
    register_toy()
    root = legacy_batch(tmp_path, "sweep")
    code = main(["eval", str(root), "--scorer", "toy-colour:templates=none", "--csv", str(tmp_path / "e.csv"), *FAST])
    assert code == 0
    with open(tmp_path / "e.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 16 and "clip_score@toy-colour" not in rows[0]
    for row in rows:
        values = json.loads((root / (row["output"] + ".json")).read_text())["sweep"]["values"]
        expected = {k: "none" if v is None else {True: "on", False: "off"}.get(v, f"{v:g}")
                    for k, v in values.items()}
        assert {k: row[k] for k in values} == expected


def test_analyze_after_eval_encodes_nothing_and_a_changed_file_is_encoded_anew(
        tmp_path: Path, tiny_paths: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []
    original = embeddings.resize_for_backbone

    def counted(image: torch.Tensor, backbone: Any) -> torch.Tensor:
        calls.append(tuple(image.shape))
        return original(image, backbone)

    monkeypatch.setattr(embeddings, "resize_for_backbone", counted)
    root = legacy_batch(tmp_path)
    outputs = sorted(root.glob("*/*.png"))
    contents = sorted((DATA / "legacy" / "inputs").glob("*.png"))
    assert main(["eval", str(root), *tiny_scorer(tiny_paths), *FAST]) == 0
    assert len(calls) == len(outputs) + len(contents)  # each file once
    [cache] = (root / ".clipopt-embeddings").glob("*.json")
    stored = json.loads(cache.read_text())
    assert stored["scorer_identity"]["weights_sha256"] == sha256(tiny_paths["clip_checkpoint"])
    assert set(stored["images"]) == {sha256(p) for p in outputs + contents}

    calls.clear()
    analyze = ["analyze", str(root), *tiny_scorer(tiny_paths), "--device", "cpu", "-q", "--no-figures"]
    assert main(analyze) == 0
    assert calls == []
    assert json.loads((root / "analysis.json").read_text())["scorers"]["tiny"]["images_encoded"] == 0

    with Image.open(outputs[0]) as image:
        image.convert("RGB").rotate(90).save(outputs[0])
    assert main(["eval", str(root), *tiny_scorer(tiny_paths), *FAST]) == 0
    assert len(calls) == 1  # the changed output only
    assert sha256(outputs[0]) in json.loads(cache.read_text())["images"]

    calls.clear()
    _, other = tiny.write_tiny_clip(tmp_path / "other", seed=7)  # another scorer: nothing of the first is reused
    assert main(["eval", str(root), "--scorer", f"{tiny.TINY_CLIP_NAME}:file={other}", "--clip-model-config",
                 str(tiny_paths["clip_model_config"]), *FAST]) == 0
    assert len(calls) == len(outputs) + len(contents)
    assert len(list((root / ".clipopt-embeddings").glob("*.json"))) == 2
    assert math.isfinite(sum(json.loads(cache.read_text())["images"][sha256(outputs[1])]))


def test_a_linked_cache_folder_is_never_written_through(tmp_path: Path, tiny_paths: dict[str, Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    root = legacy_batch(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / ".clipopt-embeddings").symlink_to(elsewhere, target_is_directory=True)
    assert main(["eval", str(root), *tiny_scorer(tiny_paths), *FAST[:-1]]) == 0  # not -q: the warning shows
    assert list(elsewhere.iterdir()) == [] and (root / "eval.json").is_file()
    assert "is a symbolic link; nothing is written through a link" in capsys.readouterr().err
