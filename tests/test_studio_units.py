"""The studio's parts without a server: which settings are refused, the prompt builder's spec, one
loaded backbone kept while the model fields stay the same, the plan file, the job queue's order."""

from __future__ import annotations

import shlex
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from clipstyler_opt import StyleConfig
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.experiment.plan import read_plan
from clipstyler_opt.studio.backbones import LoadedBackbones
from clipstyler_opt.studio.jobs import Job, JobQueue
from clipstyler_opt.studio.plan import add_to_plan
from clipstyler_opt.studio.settings import SettingRefused, build_prompt, parse_settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Written out by hand: every setting that is, or may be, a file on the server.
FILE_SETTINGS = {"clip_checkpoint": "w.pt", "clip_model_config": ["m.json"], "vgg_checkpoint": "v.pth",
                 "cache_dir": "/", "style_image": ["/etc/hosts:0.5"], "animation": "/tmp/a.gif"}


@pytest.mark.parametrize(("name", "value"), FILE_SETTINGS.items())
def test_every_setting_naming_a_file_is_refused(name: str, value: Any) -> None:
    with pytest.raises(SettingRefused, match=f"^{name} names a file on the server"):
        parse_settings({"prompt": "oil", name: value}, ["A/b"])


def test_everything_else_reaches_the_config_with_the_clis_checks() -> None:
    settings = parse_settings({"prompt": "oil", "steps": 3, "keep_colors": True, "output_size": 1024,
                               "term_weight": ["brightness=0.5"], "preset": "fast"}, ["A/b", "C/d"])
    assert settings.values == {"steps": 3, "keep_colors": True, "output_size": "1024",
                               "term_weight": ("brightness=0.5",), "preset": "fast"}
    assert settings.backbone == "A/b"
    with pytest.raises(ConfigError, match=r"style-strength must be in \[0, 1\]"):
        parse_settings({"prompt": "oil", "style_strength": 1.5}, ["A/b"])


@pytest.mark.parametrize(("rows", "spec"), [
    ([("starry night", 0.7), ("ukiyo-e", 0.3)], "starry night:0.7 | ukiyo-e:0.3"),
    ([("oil", 1.0), ("", 0.5), ("blurry", -0.5)], "oil | blurry:-0.5"),
    ([("a: b|c", 2.0)], "a\\: b\\|c:2"),
])
def test_the_prompt_builder_writes_the_spec_the_command_line_takes(rows: list[tuple[str, float]],
                                                                     spec: str) -> None:
    assert build_prompt(rows) == spec


def test_the_prompt_builder_refuses_what_the_command_line_refuses() -> None:
    with pytest.raises(ConfigError, match="repeats part 1"):
        build_prompt([("oil", 1.0), ("Oil", 1.0)])
    with pytest.raises(ConfigError, match="sum"):
        build_prompt([("oil", 0.5), ("ink", -0.5)])


def test_a_backbone_is_loaded_once_and_kept_while_its_model_fields_stay() -> None:
    made: list[StyleConfig] = []
    kept = LoadedBackbones(lambda config: made.append(config) or object())  # type: ignore[func-returns-value]
    first = kept.stylizer(StyleConfig(steps=3, device="cpu"))
    assert kept.stylizer(StyleConfig(steps=9, seed=4, device="cpu", lambda_tv=1.0)) is first  # only run settings
    other = kept.stylizer(StyleConfig(backbone=("ViT-B-16/openai",), device="cpu"))
    assert other is not first and len(made) == 2
    assert kept.stylizer(StyleConfig(device="cpu")) is not first and len(made) == 3  # the old one was dropped


def test_the_plan_file_is_an_experiment_plan_that_grows_one_value_at_a_time(tmp_path: Path) -> None:
    plan = tmp_path / "studio-plan.toml"
    cat, dog = tmp_path / "inputs" / "cat.png", tmp_path / "inputs" / "dog.png"
    cat.parent.mkdir()
    cat.write_bytes(b"x")
    dog.write_bytes(b"x")
    results = [(cat, 'oil "x" | ink:0.3', ("ViT-B-32/openai", "ViT-B-32-quickgelu/openai"), 0,
                {"steps": 100, "keep_colors": True, "term_weight": ("b=0.5",)}),
               (dog, "ink", ("SigLIP", "ViT-B-16-SigLIP/webli"), 1, {"steps": 200, "lambda_tv": 0.5})]
    for image, prompt, backbone, seed, settings in results:
        add_to_plan(plan, image=image, prompt=prompt, backbone=backbone, seed=seed, settings=settings)
    read = read_plan(plan)  # the experiment's own parser, values as it types them
    assert read.images == (str(cat.resolve()), str(dog.resolve()))
    assert read.prompts == ('oil "x" | ink:0.3', "ink")
    assert {d.field: d.values for d in read.dimensions} == {
        "backbone": (("ViT-B-32-openai", ("ViT-B-32-quickgelu/openai",)), ("SigLIP", ("ViT-B-16-SigLIP/webli",))),
        "keep_colors": ((None, True),), "lambda_tv": ((None, 0.5),), "steps": ((None, 100), (None, 200)),
        "term_weight": ((None, ("b=0.5",)),), "seed": ((None, 0), (None, 1))}
    assert tomllib.loads(plan.read_text())["content"] == {"images": ["inputs/cat.png", "inputs/dog.png"]}
    with pytest.raises(ConfigError, match="label 'SigLIP' already names"):
        add_to_plan(plan, image=cat, prompt="oil", backbone=("SigLIP", "ViT-B-16/openai"), seed=0, settings={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs", "studio-plan.toml"]  # no temporary left


def test_extending_a_plan_keeps_its_other_entries_and_a_file_that_is_not_a_plan_is_refused(tmp_path: Path) -> None:
    image = tmp_path / "cat.png"
    image.write_bytes(b"x")
    plan = tmp_path / "studio-plan.toml"
    plan.write_text('[experiment]\nname = "mine"\n[content]\nimages = ["cat.png"]\n[prompts]\ntext = "ink"\n'
                    '[settings]\nsize = 64\nsteps = 10\n[grid.lambda_content]\nlow = 50\n[eval]\npatch-crops = 8\n')
    add_to_plan(plan, image=image, prompt="oil", backbone=("CLIP", "ViT-B-32/openai"), seed=3,
                settings={"size": 64, "steps": 20, "lambda_content": 50.0})
    read = read_plan(plan)
    assert (read.name, read.images, read.prompts, read.settings) == ("mine", (str(image.resolve()),),
                                                                     ("ink", "oil"), {"size": 64})
    assert read.steps == {"eval": {"patch_crops": 8}}
    assert {d.field: d.values for d in read.dimensions} == {
        "backbone": (("CLIP", ("ViT-B-32/openai",)),), "lambda_content": (("low", 50.0),),
        "steps": ((None, 10), (None, 20)), "seed": ((None, 3),)}
    for text, message in (("images = 1\n", "images"), ("[content\n", "not TOML"), ("[paint]\n", "paint")):
        plan.write_text(text)
        with pytest.raises(ConfigError, match=message) as caught:
            add_to_plan(plan, image=image, prompt="oil", backbone=("CLIP", "ViT-B-32/openai"), seed=0, settings={})
        assert "\n" not in str(caught.value) and plan.read_text() == text  # one line; the file is untouched


def test_the_queue_runs_jobs_one_at_a_time_in_order_and_cancels_waiting_ones() -> None:
    order: list[str] = []
    gate = threading.Event()
    running = threading.Lock()

    def runner(job: Job) -> None:
        assert running.acquire(blocking=False), "two jobs at once"
        try:
            gate.wait(5)
            order.append(job.prompt)
            job.finish("done")
        finally:
            running.release()

    queue = JobQueue(runner)
    jobs = [queue.submit(Job.create(prompt=str(n), settings={}, config=None, image=Path(), stem="")) for n in range(4)]
    assert queue.cancel(jobs[2].id) is jobs[2] and jobs[2].status == "cancelled"
    assert [queue.position(job) for job in jobs] in ([0, 1, None, 2], [None, 1, None, 2], [1, 2, None, 3])
    gate.set()
    for job in jobs:
        job.finished.wait(5)
    queue.shutdown(5)
    assert order == ["0", "1", "3"] and [job.status for job in jobs] == ["done", "done", "cancelled", "done"]


def test_copy_as_command_survives_the_shell() -> None:
    from clipstyler_opt.studio.service import command_line

    line = command_line(Path("in/it's.png"), "a:0.5 | b; rm -rf ~:0.5", StyleConfig(seed=3), {"seed"})
    assert shlex.split(line) == ["clipopt", "run", "in/it's.png", "a:0.5 | b; rm -rf ~:0.5", "--seed", "3"]
