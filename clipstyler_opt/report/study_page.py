"""The study page: one self-contained HTML file (images as data URIs, inline script and style)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from clipstyler_opt.core.files import ReadSet, write_bytes
from clipstyler_opt.report.images import grey_data_uri, thumbnail_data_uri
from clipstyler_opt.report.load import load_results
from clipstyler_opt.report.markup import clean_text, fill_template, read_template, script_json
from clipstyler_opt.report.study import CSV_COLUMNS, StudyPlan, plan_study

__all__ = ["THUMBNAIL_SIDE", "render_study", "write_study"]

THUMBNAIL_SIDE = 512


def _page_data(plan: StudyPlan, max_side: int) -> dict[str, Any]:
    images = {key: thumbnail_data_uri(path, max_side) for key, path in plan.images.items()}
    images.update({key: grey_data_uri(size, max_side) for key, size in plan.greys.items()})
    trials = []
    for trial in plan.trials:
        row = asdict(trial)
        row["prompt"] = clean_text(trial.prompt)
        trials.append(row)
    return {"study_id": plan.study_id, "seed": plan.seed, "columns": list(CSV_COLUMNS), "images": images,
            "trials": trials, "cant_decide": plan.cant_decide}


def render_study(plan: StudyPlan, *, max_side: int = THUMBNAIL_SIDE) -> str:
    """The page for `plan`, with every image downscaled to JPEG and embedded."""
    return fill_template(read_template("study.html"), {
        "STYLE": read_template("study.css"),
        "DATA": script_json(_page_data(plan, max_side)),
        "SCRIPT": read_template("study.js"),
    })


def write_study(root: Path, output: Path, *, pairs: int = 30, seed: int = 0, repeat_fraction: float = 0.1,
                attention_checks: int | None = None, max_side: int = THUMBNAIL_SIDE,
                cant_decide: bool = False) -> StudyPlan:
    """Plan a study of the result folder `root` and write its page to `output` atomically
    (`cant_decide`: offer a "can't decide" answer, analysed as a tie)."""
    results = load_results(Path(root), with_evaluation=False)  # the study shows no metrics
    reads = ReadSet(results.input_files())
    reads.refuse(output)  # before any image is read
    plan = plan_study(results, pairs=pairs, seed=seed, repeat_fraction=repeat_fraction,
                      attention_checks=attention_checks, cant_decide=cant_decide)
    page = render_study(plan, max_side=max_side)
    write_bytes(Path(output), page.encode("utf-8"), reads=reads)
    return plan
