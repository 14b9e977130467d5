"""The research loop end to end with tiny models: `sweep --vary mix=...` over two labelled backbones
(a CLIP and a SigLIP architecture), `eval` with two scorers, `analyze`, then `report`.

Each step reads what the one before wrote, through the real command line. The checks are on the
files a researcher keeps: analysis.json (every probe present or skipped with a reason, response
curves along `mix` for each part, no NaN), every figure (SVG, PDF and PNG of each, the PDF with a
page, the PNG at 300 dpi) and the report's Analysis section."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import tiny
from test_batch_support import EXAMPLES

from clipstyler_opt.cli import main

MIX = [0.0, 0.25, 0.5, 0.75, 1.0]
PROMPT = "starry night | oil painting"


@pytest.fixture(scope="module")
def research(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("research")
    clip = tiny.write_all(root / "clip")
    siglip = tiny.write_tiny_siglip(root / "siglip")
    clip_spec = f"{tiny.TINY_CLIP_NAME}:file={clip['clip_checkpoint']}"
    siglip_spec = f"{tiny.TINY_SIGLIP_NAME}:file={siglip['checkpoint']}:tokenizer={siglip['tokenizer']}"
    configs = ["--clip-model-config", str(clip["clip_model_config"]), "--clip-model-config", str(siglip["config"])]
    inputs = root / "in"
    inputs.mkdir()
    for name in ("chelsea.png", "coffee.png"):
        shutil.copy(EXAMPLES / name, inputs / name)
    out = root / "mix"
    assert main(["sweep", str(inputs), "-p", PROMPT, "--vary", "mix=" + ",".join(map(str, MIX)),
                 "--vary", f"backbone=CLIP={clip_spec},SigLIP={siglip_spec}", "-o", str(out), "-q",
                 *configs, "--vgg-checkpoint", str(clip["vgg_checkpoint"]), "--size", "48", "--steps", "1",
                 "--crops", "2", "--crop-size", "32", "--device", "cpu", "--precision", "fp32"]) == 0
    scorers = ["--scorer", f"CLIP={clip_spec}", "--scorer", f"SigLIP={siglip_spec}"]
    weights = [*configs, "--device", "cpu", "-q"]
    assert main(["eval", str(out), *scorers, *weights, "--vgg-checkpoint", str(clip["vgg_checkpoint"])]) == 0
    assert main(["analyze", str(out), *scorers, *weights]) == 0
    assert main(["report", str(out), "--figures"]) == 0
    return {"folder": out}


def test_every_cell_was_made_and_scored_by_both_scorers(research: dict[str, Path]) -> None:
    folder = research["folder"]
    manifest = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines() if line.strip()]
    done = {(entry["relative"], entry["sweep"]["cell"]) for entry in manifest if entry.get("status") == "done"}
    assert len(done) == 2 * len(MIX) * 2
    weights = {entry["sweep"]["labels"]["mix"]: entry["sweep"]["prompt"]["weights"] for entry in manifest
               if entry.get("status") == "done"}
    assert weights == {"0": [1.0, 0.0], "0.25": [0.75, 0.25], "0.5": [0.5, 0.5], "0.75": [0.25, 0.75],
                       "1": [0.0, 1.0]}
    evaluation = json.loads((folder / "eval.json").read_text())
    assert evaluation["schema_version"] == 2
    assert [scorer["label"] for scorer in evaluation["scorers"]] == ["CLIP", "SigLIP"]


def test_analysis_has_every_probe_for_both_scorers_and_curves_along_mix(research: dict[str, Path]) -> None:
    text = (research["folder"] / "analysis.json").read_text()
    assert "nan" not in text.lower() and "infinity" not in text.lower()
    summary = json.loads(text)
    assert summary["n_outputs"] == 2 * len(MIX) * 2
    assert "mix" in summary["numeric_settings"]
    assert set(summary["scorers"]) == {"CLIP", "SigLIP"}
    for scorer in summary["scorers"].values():
        probes = scorer["probes"]
        for probe in ("modality_gap", "response_curves", "text_vs_image", "recognition"):
            assert probe in probes, probe
        # Along mix, one curve per part of the declared prompt and per optimiser backbone (never
        # pooled over the two), each level holding both content images.
        curves = probes["response_curves"]["mix"]
        names = [f"{part} [backbone={label}]" for part in ("starry night", "oil painting")
                 for label in ("CLIP", "SigLIP")]
        assert set(names) <= set(curves), sorted(curves)
        for part in names:
            levels = curves[part]["cos"]["levels"]
            assert [row["x"] for row in levels] == MIX
            assert all(row["n_images"] == 2 for row in levels)
            fits = curves[part]["cos"]
            assert "r2" in fits["linear"]
            assert "gamma" in fits["power"] or "skipped" in fits["power"]
        # Two prompt parts give one pair of texts: Spearman's rho needs three, so it says why.
        assert "skipped" in probes["text_vs_image"] or "n_pairs" in probes["text_vs_image"]
    agreement = summary["agreement"]["pairs"]
    assert agreement and agreement[0]["n"] == 2 * len(MIX) * 2


def _png_dpi(data: bytes) -> float:
    """Pixels per inch from the PNG's pHYs chunk, read by hand (the chunk stores pixels per metre)."""
    at = data.index(b"pHYs")
    per_metre_x = int.from_bytes(data[at + 4:at + 8], "big")
    assert data[at + 12] == 1, "pHYs unit is not the metre"
    return per_metre_x * 0.0254


def test_every_figure_is_written_as_svg_pdf_and_png(research: dict[str, Path]) -> None:
    figures = research["folder"] / "figures"
    stems: dict[str, set[str]] = {}
    for path in figures.iterdir():
        stems.setdefault(path.stem, set()).add(path.suffix)
    charts = {stem: kinds for stem, kinds in stems.items() if kinds & {".svg", ".pdf", ".png"}}
    assert any(stem.startswith("response-mix") for stem in charts), sorted(charts)
    assert any(stem.startswith("modality-gap") for stem in charts)
    for stem, kinds in charts.items():
        assert {".svg", ".pdf", ".png"} <= kinds, stem
        pdf = (figures / f"{stem}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF-") and re.search(rb"/Type\s*/Page\b", pdf), stem
        png = (figures / f"{stem}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and _png_dpi(png) == pytest.approx(300, abs=1), stem
        svg = (figures / f"{stem}.svg").read_text()
        assert "<svg" in svg and "/tmp" not in svg and str(research["folder"]) not in svg, stem


def test_the_report_and_its_tables_show_the_analysis_without_absolute_paths(research: dict[str, Path]) -> None:
    folder = research["folder"]
    html = (folder / "report.html").read_text()
    assert "Analysis" in html
    assert "CLIP" in html and "SigLIP" in html
    assert str(folder.parent) not in html
    header = (folder / "figures" / "report-metrics.csv").read_text().splitlines()[0].split(",")
    assert {"backbone", "mix", "n", "clip_score", "clip_score@SigLIP"} <= set(header), header
    for table in ("report-metrics.csv", "report-metrics.md", "report-metrics.tex"):
        assert str(folder.parent) not in (folder / "figures" / table).read_text(), table
