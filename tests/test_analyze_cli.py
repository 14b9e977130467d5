"""`clipopt analyze` end to end with tiny models: a sweep over a numeric setting with two prompts,
two scorers, analysis.json, the figures, and the embedding cache."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import tiny
from test_batch_support import EXAMPLES, tiny_flags

from clipstyler_opt.cli import main
from clipstyler_opt.report.analysis_section import analysis_section, read_analysis
from clipstyler_opt.report.markup import format_number

STRENGTHS = "0.25,0.5,0.75,1"


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path], Path]:
    root = tmp_path_factory.mktemp("analyze")
    paths = tiny.write_all(root / "weights")
    _, second = tiny.write_tiny_clip(root / "weights-2", seed=7)
    inputs = root / "in"
    inputs.mkdir()
    for name in ("chelsea.png", "coffee.png"):
        shutil.copy(EXAMPLES / name, inputs / name)
    out = root / "sweep"
    code = main(["sweep", str(inputs), "-p", "starry night", "-p", "oil painting", "--vary",
                 f"style_strength={STRENGTHS}", "-o", str(out), "-q", *tiny_flags(paths, steps=1)])
    assert code == 0
    return out, paths, second


def _analyze(folder: Path, paths: dict[str, Path], second: Path, *extra: str) -> int:
    scorers = ["--scorer", f"{tiny.TINY_CLIP_NAME}:file={paths['clip_checkpoint']}",
               "--scorer", f"{tiny.TINY_CLIP_NAME}:file={second}"]
    return main(["analyze", str(folder), *scorers, "--clip-model-config", str(paths["clip_model_config"]),
                 "--device", "cpu", "-q", *extra])


def test_analyze_writes_every_probe_and_figure_for_two_scorers(swept: tuple[Path, dict[str, Path], Path]) -> None:
    folder, paths, second = swept
    assert _analyze(folder, paths, second) == 0
    summary = json.loads((folder / "analysis.json").read_text())
    assert summary["schema_version"] == 1 and summary["n_outputs"] == 16
    assert summary["numeric_settings"] == ["style_strength"]
    assert len(summary["scorers"]) == 2
    for scorer in summary["scorers"].values():
        probes = scorer["probes"]
        assert probes["modality_gap"]["n_texts"] == 2
        curve = probes["response_curves"]["style_strength"]["starry night"]["cos"]
        assert [row["x"] for row in curve["levels"]] == [0.25, 0.5, 0.75, 1.0]
        assert curve["levels"][0]["n_images"] == 2
        assert "r2" in curve["linear"] and ("gamma" in curve["power"] or "skipped" in curve["power"])
        assert probes["recognition"]["n_outputs"] == 16 or "skipped" in probes["recognition"]
        assert "n_pairs" in probes["text_vs_image"] or "skipped" in probes["text_vs_image"]
        assert scorer["images_encoded"] == 18  # 16 outputs and 2 content images, each once
    assert summary["agreement"]["pairs"][0]["n"] == 16
    assert "nan" not in (folder / "analysis.json").read_text().lower()
    figures = {p.name for p in (folder / "figures").iterdir()}
    for stem in ("modality-gap", "response-style-strength-cos-clipopt-tiny-test-tiny-clip"):
        assert any(name.startswith(stem) and name.endswith(".pdf") for name in figures), stem
    for suffix in ("svg", "pdf", "png"):
        assert any(name.endswith(suffix) for name in figures)
    # the report's Analysis section reads this very file: a row per scorer with its modality gap
    section = analysis_section(read_analysis(folder), [], lambda figure: "")
    for name, scorer in summary["scorers"].items():
        gap = scorer["probes"]["modality_gap"]["gap"]
        assert re.search(rf"<tr><td>{re.escape(name)}</td><td class=\"num\">{format_number(gap)}</td>", section)


def test_a_second_analysis_encodes_nothing_and_a_changed_file_is_encoded_again(
        swept: tuple[Path, dict[str, Path], Path]) -> None:
    folder, paths, second = swept
    assert _analyze(folder, paths, second, "--no-figures") == 0
    summary = json.loads((folder / "analysis.json").read_text())
    assert [s["images_encoded"] for s in summary["scorers"].values()] == [0, 0]
    output = next(folder.rglob("chelsea.png"))
    from PIL import Image

    with Image.open(output) as image:
        image.convert("RGB").rotate(90).save(output)
    assert _analyze(folder, paths, second, "--no-figures") == 0
    summary = json.loads((folder / "analysis.json").read_text())
    assert [s["images_encoded"] for s in summary["scorers"].values()] == [1, 1]


def test_a_folder_without_a_manifest_is_refused_before_any_weights_load(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(tmp_path), "--scorer", "no-such-model/xyz"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "manifest.jsonl" in err


def _study(path: Path, cells: dict[str, float]) -> Path:
    path.write_text(json.dumps({"questions": [{"question": "style", "cells": [
        {"cell": cell, "bradley_terry": strength} for cell, strength in cells.items()]}]}))
    return path


def test_a_study_is_compared_with_every_metric_and_never_overwritten(
        swept: tuple[Path, dict[str, Path], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from clipstyler_opt.report.load import load_results

    folder, paths, second = swept
    cells = [cell.id for cell in load_results(folder).cells]
    study = _study(tmp_path / "study.json", {cell: float(i + 1) for i, cell in enumerate(cells)})
    assert _analyze(folder, paths, second, "--no-figures", "--study", str(study)) == 0
    humans = json.loads((folder / "analysis.json").read_text())["humans"]
    assert humans["study"] == "study.json"
    rows = humans["questions"]["style"]
    assert len(rows) == 2 and all(name.endswith(": direction") for name in rows)
    for row in rows.values():
        assert row["n_cells"] == 4 and row["n_outputs"] == 16 and -1.0 <= row["tau"]["estimate"] <= 1.0

    foreign = _study(tmp_path / "other.json", {"not-a-cell": 1.0, cells[0]: 2.0})
    before = (folder / "analysis.json").read_bytes()
    capsys.readouterr()
    assert _analyze(folder, paths, second, "--study", str(foreign)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'not-a-cell' is not a cell of this folder" in err
    assert (folder / "analysis.json").read_bytes() == before

    inside = _study(folder / "analysis.json", {cells[0]: 1.0})  # the study file where the analysis goes
    assert _analyze(folder, paths, second, "--no-figures", "--study", str(inside)) != 0
    assert json.loads(inside.read_text())["questions"][0]["cells"] == [{"cell": cells[0], "bradley_terry": 1.0}]
