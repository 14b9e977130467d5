"""eval.json's two layouts: a version-1 file written before several scorers existed (tests/data/
eval-v1.json, from `clipopt eval` of tests/data/legacy/batch with the toy scorer, its paths made
relative), a version-2 file, and forged files, read by `clipopt report` and the folder reader."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from clipstyler_opt.cli import cli
from clipstyler_opt.report import load_results

DATA = Path(__file__).parent / "data"
V1 = DATA / "eval-v1.json"
MULTI = "green-0-7-blue-0-3-3a101fec"


def legacy_batch(base: Path, name: str = "batch") -> Path:
    """A copy of the legacy batch (or sweep) folder whose manifest names its content images by
    absolute path (as a batch run from anywhere records them)."""
    root = base / name
    shutil.copytree(DATA / "legacy" / name, root)
    manifest = root / "manifest.jsonl"
    lines = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    for line in lines:
        if isinstance(line.get("input"), str):
            line["input"] = str(DATA.parent.parent / line["input"])
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return root


def v2_document(v1: dict[str, Any]) -> dict[str, Any]:
    """The v1 fixture as version 2 with two scorers, A (first) and B, and the parts of the
    two-part prompt; B's values are A's plus 1, a part's clip_score is its weight / 10."""
    document = json.loads(json.dumps(v1))
    document["schema_version"] = 2
    document["scorers"] = [{"label": "A", "spec": "toy-colour", "weights_sha256": None, "optimised_outputs": 4},
                           {"label": "B", "spec": "other/x", "weights_sha256": "ab" * 32, "optimised_outputs": 0}]
    for row in document["rows"]:
        style = {k: row["metrics"][k] for k in ("clip_score", "directional_similarity", "patch_clip_score")}
        parts = [{"text": "green", "weight": 0.7, "metrics": {"clip_score": 0.07}, "unavailable": {}},
                 {"text": "blue", "weight": 0.3, "metrics": {"clip_score": 0.03}, "unavailable": {}}] \
            if row["prompt"].startswith("green") else []
        row["scores"] = {"A": {"metrics": style, "unavailable": {}, "scorer_was_optimiser": True, "parts": parts},
                         "B": {"metrics": {k: v + 1 for k, v in style.items()}, "unavailable": {},
                               "scorer_was_optimiser": False, "parts": parts}}
    return document


def test_a_version_1_file_is_read_as_one_scorer(tmp_path: Path) -> None:
    root = legacy_batch(tmp_path)
    shutil.copy(V1, root / "eval.json")
    expected = json.loads(V1.read_text())  # independent: the file itself
    evaluation = load_results(root).evaluation
    assert evaluation is not None and evaluation.schema_version == 1
    assert list(evaluation.metrics) == list(expected["directions"])
    assert [s.label for s in evaluation.scorers] == ["toy-colour"] and evaluation.parts == {}
    v1_file = {**expected, "scorer": {"spec": "ViT-B-32/openai:file=/data/weights/clip.pt"}}
    (root / "eval.json").write_text(json.dumps(v1_file))  # a v1 scorer's label: never a folder path
    assert [s.label for s in load_results(root).evaluation.scorers] == ["ViT-B-32 (clip)"]  # type: ignore[union-attr]
    shutil.copy(V1, root / "eval.json")
    for row in expected["rows"]:
        for metric, value in row["metrics"].items():
            assert evaluation.value(row["output"], metric) == value
    result = CliRunner().invoke(cli, ["report", str(root)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    page = (root / "report.html").read_text(encoding="utf-8")
    assert "clip_score" in page and "@" not in "".join(evaluation.metrics)


def test_a_version_2_file_gives_every_scorer_a_column_and_keeps_the_parts(tmp_path: Path) -> None:
    root = legacy_batch(tmp_path)
    v1 = json.loads(V1.read_text())
    (root / "eval.json").write_text(json.dumps(v2_document(v1)))
    evaluation = load_results(root).evaluation
    assert evaluation is not None and evaluation.schema_version == 2
    assert [(s.label, s.optimised_outputs) for s in evaluation.scorers] == [("A", 4), ("B", 0)]
    assert list(evaluation.metrics) == [*v1["directions"], "clip_score[green]", "clip_score[blue]",
                                        "clip_score@B", "directional_similarity@B", "patch_clip_score@B"]
    assert evaluation.directions["clip_score@B"] == evaluation.directions["clip_score[blue]"] == "higher"
    for row in v1["rows"]:
        assert evaluation.value(row["output"], "clip_score") == row["metrics"]["clip_score"]
        assert evaluation.value(row["output"], "clip_score@B") == row["metrics"]["clip_score"] + 1
        multi = row["output"].startswith(MULTI)
        assert evaluation.value(row["output"], "clip_score[green]") == (0.07 if multi else None)
    [green, blue] = evaluation.parts["B"][f"{MULTI}/cat.png"]
    assert (green.text, green.weight, green.metrics["clip_score"]) == ("green", 0.7, 0.07)
    assert (blue.text, blue.weight) == ("blue", 0.3)
    assert evaluation.parts["A"]["red-b1f51a51/cat.png"] == ()
    from clipstyler_opt.report.sections import metrics_section
    from clipstyler_opt.report.tables import metrics_table

    results = load_results(root)  # the report's table (the whole report is built for version 1 above)
    page = metrics_section(results, metrics_table(results))
    assert "clip_score@B" in page and "clip_score[blue]" in page


def _forge(document: dict[str, Any], change: str) -> bytes:
    v2 = v2_document(document)
    rows = v2["rows"]
    forged: dict[str, Any] = {
        "a list": [],
        "rows not a list": {**document, "rows": 3},
        "a row without output": {**document, "rows": [{"metrics": {}}]},
        "metrics not an object": {**document, "rows": [{**rows[0], "metrics": [1]}]},
        "a newer version": {**v2, "schema_version": 3},
        "a version as text": {**v2, "schema_version": "2"},
        "version 2 without scorers": {**v2, "scorers": []},
        "a scorer without a label": {**v2, "scorers": [{"label": 5}]},
        "one label twice": {**v2, "scorers": [v2["scorers"][0], v2["scorers"][0]]},
        "scores not an object": {**v2, "rows": [{**rows[0], "scores": "A"}]},
        "a part without a weight": {**v2, "rows": [{**rows[0], "scores": {"A": {"parts": [{"text": "x"}]}}}]},
    }.get(change, document)
    if change == "not UTF-8":
        return b'{"rows": ["\xff"]}'
    if change == "cut":
        return json.dumps(document).encode()[:100]
    return json.dumps(forged).encode()


@pytest.mark.parametrize("change", ["a list", "rows not a list", "a row without output", "metrics not an object",
                                    "a newer version", "a version as text", "version 2 without scorers",
                                    "a scorer without a label", "one label twice", "scores not an object",
                                    "a part without a weight", "not UTF-8", "cut"])
def test_a_forged_eval_json_is_a_one_line_error(tmp_path: Path, change: str) -> None:
    root = legacy_batch(tmp_path)
    (root / "eval.json").write_bytes(_forge(json.loads(V1.read_text()), change))
    result = CliRunner().invoke(cli, ["report", str(root)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    [line] = result.output.strip().splitlines()
    assert "eval.json" in line and "Traceback" not in result.output
    assert not (root / "report.html").exists()
