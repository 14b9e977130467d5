"""`clipopt experiment` end to end with tiny models: a plan of 2 images x 2 prompts x 2 backbones x
2 seeds, its record, a second run that does nothing, a new seed that adds only its jobs, a change
that would redefine finished cells, and the folder lock."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
import tiny
from test_batch_support import EXAMPLES

from clipstyler_opt.cli import main

PROMPTS = ("starry night", "oil painting")
IMAGES = ("chelsea.png", "coffee.png")


def plan_text(seeds: str = "0, 1", steps: int = 1, figures: bool = True) -> str:
    return f"""\
[experiment]
name = "tiny comparison"

[content]
images = ["in"]

[prompts]
text = {json.dumps(list(PROMPTS))}

[backbones]
CLIP = "{tiny.TINY_CLIP_NAME}:file=weights/tiny-clip.safetensors"
Other = "{tiny.TINY_CLIP_NAME}:file=other/tiny-clip.safetensors"

[settings]
clip_model_config = ["weights/{tiny.TINY_CLIP_NAME}.json"]
vgg_checkpoint = "weights/tiny-vgg19.pth"
size = 32
steps = {steps}
crops = 2
crop_size = 16
device = "cpu"
precision = "fp32"
offline = true

[replicates]
seeds = [{seeds}]

[eval]
scorer = "{tiny.TINY_CLIP_NAME}:file=other/tiny-clip.safetensors"
patch-crops = 2
patch-size = 16

[analyze]
scorer = ["{tiny.TINY_CLIP_NAME}:file=weights/tiny-clip.safetensors"]
no-figures = true

[report]
figures = {json.dumps(figures)}
"""


def job_records(folder: Path) -> list[dict[str, object]]:
    lines = (folder / "manifest.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("record") == "job"]


def stamps(folder: Path) -> dict[str, int]:
    """Every file below `folder` -> its modification time in nanoseconds."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plan's files: tiny weights of two backbones, two images, the plan."""
    root = tmp_path_factory.mktemp("experiment")
    tiny.write_all(root / "weights")
    tiny.write_tiny_clip(root / "other", seed=7)
    (root / "in").mkdir()
    for name in IMAGES:
        shutil.copy(EXAMPLES / name, root / "in" / name)
    (root / "plan.toml").write_text(plan_text())
    return root


@pytest.fixture(scope="module")
def home(workspace: Path) -> Path:
    """The workspace after one run of the plan (caches kept inside it, as `isolated_caches` does
    for each test)."""
    with pytest.MonkeyPatch.context() as env:
        for name, folder in (("CLIPOPT_CACHE_DIR", "clipopt"), ("HF_HOME", "hf"), ("TORCH_HOME", "torch")):
            env.setenv(name, str(workspace / "cache-home" / folder))
        assert main(["experiment", "run", str(workspace / "plan.toml"), "-q"]) == 0
    return workspace


def test_the_plan_runs_every_job_and_each_step_once(home: Path) -> None:
    folder = home / "plan"  # named after the plan, beside it
    records = job_records(folder)
    assert len(records) == 16 and {r["status"] for r in records} == {"done"}
    cells = {str(r["output"]).split("/")[0] for r in records}
    assert len(cells) == 4
    assert {(r["prompt"], Path(str(r["input"])).name) for r in records} == {(p, i) for p in PROMPTS for i in IMAGES}
    for name in ("eval.json", "analysis.json", "report.html", "plan.toml"):
        assert (folder / name).is_file(), name
    evaluated = json.loads((folder / "eval.json").read_text())
    assert len(evaluated["rows"]) == 16
    record = json.loads((folder / "experiment.json").read_text())
    assert (folder / "plan.toml").read_text() == (home / "plan.toml").read_text()
    run = record["runs"][-1]
    assert run["status"] == "done" and run["command"][:4] == ["clipopt", "experiment", "run", str(home / "plan.toml")]
    assert run["versions"]["torch"] and run["machine"]["device"] == "cpu"
    assert run["steps"] == {"sweep": "ran", "eval": "ran", "analyze": "ran", "report": "ran"}
    assert sorted(record["cells"]) == sorted(cells)
    labels = sorted((c["labels"]["backbone"], c["labels"]["seed"]) for c in record["cells"].values())
    assert labels == [("CLIP", "0"), ("CLIP", "1"), ("Other", "0"), ("Other", "1")]
    assert sorted(cells) == [f"backbone={b},seed={s}" for b in ("CLIP", "Other") for s in (0, 1)]


def test_the_report_exports_every_figure_and_table_without_an_absolute_path(home: Path) -> None:
    from PIL import Image

    folder, figures = home / "plan", home / "plan" / "figures"
    charts = {p.stem for p in figures.glob("report-*.svg")}
    assert any(c.startswith("report-tradeoff") for c in charts) and any(c.startswith("report-grid") for c in charts)
    for chart in charts:
        pdf = (figures / f"{chart}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF-") and b"/Type /Page" in pdf, chart
        with Image.open(figures / f"{chart}.png") as png:
            assert [round(v) for v in png.info["dpi"]] == [300, 300], chart
    columns, *rows = csv.reader(io.StringIO((figures / "report-metrics.csv").read_text()))
    assert columns[:4] == ["prompt", "cell", "backbone", "n"] and "clip_score_low" in columns
    # the seeds are replicates: a row per prompt and backbone, over 2 content images x 2 seeds
    assert len(rows) == 4 and {row[2] for row in rows} == {"CLIP", "Other"} and {row[3] for row in rows} == {"4"}
    latex = (figures / "report-metrics.tex").read_text()
    body = latex[latex.index(r"\toprule"):latex.index(r"\bottomrule")]
    assert latex.count(r"\begin{tabular}") == latex.count(r"\end{tabular}") == 1 and r"\midrule" in body
    estimates = sum(c.endswith("_low") for c in columns)  # each is NAME, NAME_low, NAME_high, NAME_n in the CSV
    widths = {line.count(" & ") for line in body.splitlines() if line.endswith(r"\\")}
    assert widths == {len(columns) - 1 - 3 * estimates}
    texts = [folder / "report.html", *figures.glob("*.svg"), *figures.glob("report-metrics.*")]
    record = json.loads((folder / "experiment.json").read_text())
    labels = json.dumps([cell["labels"] for cell in record["cells"].values()])
    for text in [*(p.read_text() for p in texts), labels]:
        assert str(home) not in text and "/tmp" not in text


def test_a_second_run_does_nothing(home: Path) -> None:
    folder = home / "plan"
    before = stamps(folder)
    assert main(["experiment", "run", str(home / "plan.toml")]) == 0  # without -q: saying more changes nothing
    after = stamps(folder)
    assert {k: v for k, v in after.items() if before.get(k) != v} .keys() == {"experiment.json"}
    run = json.loads((folder / "experiment.json").read_text())["runs"][-1]
    assert run["steps"] == {"sweep": "nothing to do: all 16 jobs are done", "eval": "up to date",
                            "analyze": "up to date", "report": "up to date"}


def test_a_new_seed_does_only_its_jobs_then_every_step_again(home: Path) -> None:
    folder = home / "plan"
    outputs_before = {k: v for k, v in stamps(folder).items() if k.endswith(".png") and "figures" not in k}
    (home / "plan.toml").write_text(plan_text(seeds="0, 1, 2", figures=False))  # (figures take seconds)
    assert main(["experiment", "run", str(home / "plan.toml"), "-q"]) == 0
    records = job_records(folder)
    latest = {r["output"]: r["status"] for r in records}
    assert len(latest) == 24 and set(latest.values()) == {"done", "skipped"}
    assert sum(r["status"] == "done" for r in records) == 24  # 16 before, 8 now
    outputs_after = {k: v for k, v in stamps(folder).items() if k.endswith(".png") and "figures" not in k}
    assert {k: outputs_after[k] for k in outputs_before} == outputs_before  # nothing made again
    assert len(outputs_after) - len(outputs_before) == 8
    assert len(json.loads((folder / "eval.json").read_text())["rows"]) == 24
    run = json.loads((folder / "experiment.json").read_text())["runs"][-1]
    assert run["steps"]["eval"] == "ran" and run["steps"]["report"] == "ran"


def test_a_plan_that_would_redefine_finished_cells_is_refused(home: Path, capsys: pytest.CaptureFixture[str]
                                                              ) -> None:
    folder = home / "plan"
    before = stamps(folder)
    changed = home / "changed.toml"
    changed.write_text(plan_text(seeds="0, 1, 2", steps=2, figures=False))
    capsys.readouterr()
    assert main(["experiment", "run", str(changed), "-o", str(folder), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "steps was 1 when its outputs were made, and the plan now makes it 2" in err and "cell backbone=" in err
    assert stamps(folder) == before


def test_a_second_run_on_the_folder_is_refused_by_the_lock(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from clipstyler_opt.batch import LOCK_NAME, BatchLock

    folder = home / "plan"
    with BatchLock(folder, name=LOCK_NAME + ".experiment", holder="clipopt experiment run"):
        assert main(["experiment", "run", str(home / "plan.toml"), "-q"]) == 10
    assert "in use by another clipopt experiment run" in capsys.readouterr().err


def test_status_counts_the_jobs_of_each_cell_and_the_steps(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = home / "plan"
    capsys.readouterr()
    assert main(["experiment", "status", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "experiment tiny comparison: 24 of 24 jobs done, 0 failed, 0 to do"
    cells = [line for line in out if line.startswith("  ")]
    assert len(cells) == 6 and all(line.endswith(": 4 of 4 done") for line in cells)
    assert sorted(line.split(":")[0].strip() for line in cells) == [
        f"backbone={b},seed={s}" for b in ("CLIP", "Other") for s in range(3)]
    assert out[len(cells) + 1:len(cells) + 4] == ["eval: up to date", "analyze: up to date", "report: up to date"]


def test_experiment_report_redoes_a_step_whose_file_is_gone(home: Path) -> None:
    folder = home / "plan"
    (folder / "report.html").unlink()
    evaluated = (folder / "eval.json").stat().st_mtime_ns
    assert main(["experiment", "report", str(folder), "-q"]) == 0
    assert (folder / "report.html").is_file() and (folder / "eval.json").stat().st_mtime_ns == evaluated
    run = json.loads((folder / "experiment.json").read_text())["runs"][-1]
    assert run["command"][:3] == ["clipopt", "experiment", "report"]
    assert run["steps"] == {"eval": "up to date", "analyze": "up to date", "report": "ran"}


GOOD = plan_text()


@pytest.mark.parametrize(("change", "line", "message"), [
    (("[settings]\n", "[settings]\nstepz = 3\n"), 15,
     "settings.stepz: unknown setting 'stepz' (did you mean 'steps'?)"),
    (("steps = 1", "steps = \"many\""), 18, "settings.steps: must be an integer, got \"many\" (a string)"),
    (("[replicates]\nseeds = [0, 1]", "[replicates]\nseeds = []"), 26, "replicates.seeds: is empty"),
    (("[replicates]", "[grid]\nlambda_content = []\n[replicates]"), 26, "grid.lambda_content: is empty"),
    (("[replicates]", "[grid.lambda_tv]\nlow = 1\nlow = 2\n[replicates]"), 27, "grid.lambda_tv.low: is given twice"),
    (("[replicates]", "[grid.lambda_tv]\nlow = 1\nalso = 1\n[replicates]"), 25,
     "grid.lambda_tv: the value 1.0 is given twice"),
    (('images = ["in"]', 'images = ["missing"]'), 5, "content.images: 'missing': no such file or folder"),
    (("other/tiny-clip.safetensors\"\n\n", "gone.safetensors\"\n\n"), 12, "backbones.Other: 'gone.safetensors': "),
    (("[eval]\n", "[eval]\nscorerr = 1\n"), 29, "eval.scorerr: not an option of clipopt eval (did you mean 'scorer'?)"),
    (("patch-crops = 2", "patch-crops = 0"), 30, "eval.patch-crops: Invalid value"),
    (("[eval]", "[evaluation]"), 28, "evaluation: unknown setting 'evaluation'"),
])
def test_a_bad_plan_is_one_line_naming_the_file_line_and_key_before_any_work(
        workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], change: tuple[str, str], line: int,
        message: str) -> None:
    assert change[0] in GOOD
    plan = workspace / f"bad-{tmp_path.name}.toml"
    plan.write_text(GOOD.replace(change[0], change[1], 1))
    capsys.readouterr()
    assert main(["experiment", "run", str(plan), "-q"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: {plan}:{line}: ") and message in err, err
    assert not plan.with_suffix("").exists()


def test_the_bundled_plan_is_the_readmes_and_every_step_of_it_parses() -> None:
    """examples/experiment.toml: shown whole in the README, its prompts' sources given, and each
    step's command line accepted by its command (no weights are loaded)."""
    from clipstyler_opt.cli.experiment_steps import prepare
    from clipstyler_opt.experiment import read_plan

    text = (EXAMPLES / "experiment.toml").read_text()
    readme = (EXAMPLES.parent / "README.md").read_text()
    shown = readme[readme.index("<!-- experiment.toml -->"):readme.index("<!-- /experiment.toml -->")]
    assert shown.split("```toml\n", 1)[1].rsplit("```", 1)[0] == text
    plan = read_plan(EXAMPLES / "experiment.toml")
    prompts = (EXAMPLES / "prompts" / "clipstyler.txt").read_text()
    assert len(plan.prompts) == 5 and all(f'"{prompt}"' in prompts for prompt in plan.prompts)  # each one sourced
    assert [d.field for d in plan.dimensions] == ["backbone", "seed"]
    exp = prepare(plan, EXAMPLES / "experiment")
    assert sorted(cell.id for cell in exp.settings.cells) == [
        f"backbone={b},seed={s}" for b in ("CLIP", "SigLIP") for s in (0, 1)]
    assert list(exp.steps) == ["sweep", "eval", "analyze", "study", "report"]
    assert exp.steps["report"].words[-1] == "--figures"
