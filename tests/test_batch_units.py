"""Batch building blocks that need no backbones: discovery, names, seeds, shards, manifest."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path, PurePosixPath

import pytest

from clipstyler_opt import StyleConfig
from clipstyler_opt.batch import (MANIFEST_NAME, DigestCache, ManifestWriter, Shard, build_jobs, derive_seed,
                                  discover_inputs, expected_settings_hash, read_prompts_file, read_records,
                                  scan_jobs)
from clipstyler_opt.batch.discovery import InputFile
from clipstyler_opt.batch.manifest import journal_path, merge_stale_journals
from clipstyler_opt.config import load_toml
from clipstyler_opt.errors import ConfigError, InputImageError
from clipstyler_opt.imageio import sidecar_path
from test_batch_support import EXAMPLES, make_photo_folder

NASTY_PROMPTS = ["../../etc/passwd", "/absolute/path", "..", "a\\b/../c", "夜空 🌃 starry night", "x" * 500,
                 "Starry Night", "starry night", ". ", "\u202eevil\u0000nul"]


def _relatives(found: list[InputFile]) -> list[str]:
    return [item.relative.as_posix() for item in found]


def test_discovery_recognises_images_by_content(tmp_path: Path) -> None:
    folder = make_photo_folder(tmp_path / "photos")
    shutil.copy(EXAMPLES / "chelsea.png", folder / "no-extension")
    (folder / "broken.jpg").write_bytes(b"definitely not a jpeg" * 10)
    (folder / ".hidden.png").write_bytes((EXAMPLES / "chelsea.png").read_bytes())
    assert _relatives(discover_inputs([str(folder)])) == ["broken.jpg", "chelsea.png", "coffee.png", "no-extension"]
    assert _relatives(discover_inputs([str(folder)], recursive=True))[-1] == "sub/rocket.jpg"


def test_discovery_globs_files_and_the_output_folder(tmp_path: Path) -> None:
    folder = make_photo_folder(tmp_path / "photos")
    out = folder / "out"
    (out / "style").mkdir(parents=True)
    shutil.copy(EXAMPLES / "chelsea.png", out / "style" / "chelsea.png")
    found = discover_inputs([str(folder)], recursive=True, exclude=out)
    assert _relatives(found) == ["chelsea.png", "coffee.png", "sub/rocket.jpg"]  # results are never inputs
    globbed = discover_inputs([str(folder / "**" / "*.jpg")])
    assert [(i.root, i.relative) for i in globbed] == [(folder, PurePosixPath("sub/rocket.jpg"))]
    explicit = discover_inputs([str(folder / "notes.txt"), str(folder / "coffee.png"), str(folder)])
    assert _relatives(explicit) == ["notes.txt", "coffee.png", "chelsea.png"]  # named files are always tried
    with pytest.raises(InputImageError, match="no such file"):
        discover_inputs([str(tmp_path / "missing")])


def test_output_names_never_collide(tmp_path: Path) -> None:
    inputs = [
        InputFile(Path("a/cat.jpg"), Path("a"), PurePosixPath("cat.jpg")),
        InputFile(Path("a/cat.png"), Path("a"), PurePosixPath("cat.png")),
        InputFile(Path("b/cat.jpg"), Path("b"), PurePosixPath("cat.jpg")),
        InputFile(Path("a/CAT.webp"), Path("a"), PurePosixPath("CAT.webp")),
        InputFile(Path("x/photos/dog.jpg"), Path("x/photos"), PurePosixPath("dog.jpg")),
        InputFile(Path("y/photos/dog.jpg"), Path("y/photos"), PurePosixPath("dog.jpg")),
        InputFile(Path("a/sub/dog.jpg"), Path("a"), PurePosixPath("sub/dog.jpg")),
    ]
    jobs = build_jobs(inputs, ["style"], tmp_path / "out")
    names = [job.output_name.split("/", 1)[1] for job in jobs]
    assert len({name.casefold() for name in names}) == len(inputs)
    assert "sub/dog.png" in names  # no collision: the plain name
    assert {"a/cat.jpg.png", "b/cat.jpg.png", "cat.png.png"} <= set(names)


def test_nasty_prompts_stay_inside_the_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    item = InputFile(EXAMPLES / "chelsea.png", EXAMPLES, PurePosixPath("chelsea.png"))
    jobs = build_jobs([item], NASTY_PROMPTS, out)
    assert len({job.output.parent for job in jobs}) == len(NASTY_PROMPTS)  # one folder per prompt
    for job in jobs:
        assert job.output.parent.parent == out
        assert Path(os.path.normpath(job.output)).is_relative_to(out)
        folder = job.output.parent.name
        assert folder.isascii() and len(folder) <= 60 and folder not in (".", "..") and "/" not in folder
    with pytest.raises(ConfigError, match="empty"):
        build_jobs([item], ["  "], out)


def test_seeds_depend_on_base_seed_relative_path_and_prompt() -> None:
    seed = derive_seed(0, "sub/cat.jpg", "starry night")
    assert seed == derive_seed(0, "sub/cat.jpg", "starry night") and 0 <= seed < 2**31
    others = {derive_seed(1, "sub/cat.jpg", "starry night"), derive_seed(0, "cat.jpg", "starry night"),
              derive_seed(0, "sub/cat.jpg", "starry night!")}
    assert seed not in others and len(others) == 3
    item = InputFile(Path("/data/photos/sub/cat.jpg"), Path("/data/photos"), PurePosixPath("sub/cat.jpg"))
    moved = InputFile(Path("/elsewhere/sub/cat.jpg"), Path("/elsewhere"), PurePosixPath("sub/cat.jpg"))
    assert build_jobs([item], ["starry night"], Path("o"))[0].seed == seed
    assert build_jobs([moved], ["starry night"], Path("o"))[0].seed == seed  # same on every machine


def test_shards_partition_the_job_list() -> None:
    items = [InputFile(Path(f"p/{i}.png"), Path("p"), PurePosixPath(f"{i}.png")) for i in range(7)]
    jobs = build_jobs(items, ["a", "b", "c"], Path("out"))
    for count in (1, 2, 3, 5, 30):
        taken = [job.key for index in range(count) for job in Shard(index, count).take(jobs)]
        assert sorted(taken) == sorted(job.key for job in jobs) and len(set(taken)) == len(jobs)
    # torchrun inside a --shard: the ranks split the shard again, still exactly once
    inner = [job.key for rank in range(2) for job in Shard(rank, 2).take(Shard(1, 3).take(jobs))]
    assert sorted(inner) == sorted(job.key for job in Shard(1, 3).take(jobs))
    assert Shard.parse(" 1 / 4 ") == Shard(1, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ConfigError):
            Shard.parse(bad)


def test_prompts_file(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text("# styles\nstarry night\n\n  ukiyo-e woodblock print  \n", encoding="utf-8")
    assert read_prompts_file(path) == ["starry night", "ukiyo-e woodblock print"]


def test_manifest_survives_a_truncated_last_line(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    with ManifestWriter(path) as writer:
        writer.append({"record": "job", "n": 1})
    with open(path, "ab") as fh:
        fh.write(b'{"record": "job", "n": 2, "trunc')  # a crash mid-write
    assert [r["n"] for r in read_records(path)] == [1]
    with ManifestWriter(path) as writer:
        writer.append({"record": "job", "n": 3})  # starts on a fresh line, so it stays readable
    assert [r["n"] for r in read_records(path)] == [1, 3]


def test_stale_journals_are_merged_once_and_live_ones_left(tmp_path: Path) -> None:
    dead = journal_path(tmp_path, "run-a", 1)
    dead.write_text(json.dumps({"record": "job", "run": "run-a", "prompt": "p", "output": "x.png"}) + "\n")
    with ManifestWriter(journal_path(tmp_path, "run-b", 0), lock=True) as live:
        live.append({"record": "job", "run": "run-b", "prompt": "p", "output": "y.png"})
        assert merge_stale_journals(tmp_path) == 1
        assert live.path.exists()  # its rank is still running
    assert not dead.exists()
    assert [r["output"] for r in read_records(tmp_path / MANIFEST_NAME)] == ["x.png"]


def test_resume_scan_compares_the_sidecar_hash(tmp_path: Path) -> None:
    config = StyleConfig(size=64, steps=2)
    item = InputFile(EXAMPLES / "chelsea.png", EXAMPLES, PurePosixPath("chelsea.png"))
    job = build_jobs([item], ["starry night"], tmp_path)[0]
    digests = DigestCache()
    assert scan_jobs([job], config, digests).todo == [job]
    job.output.parent.mkdir(parents=True)
    job.output.write_bytes(b"image")
    sha = digests.get(job.input)
    assert sha is not None
    sidecar_path(job.output).write_text(json.dumps({"settings_hash": expected_settings_hash(config, job,
                                                                                           sha.sha256)}))
    assert [skipped[0] for skipped in scan_jobs([job], config, digests).skipped] == [job]
    assert scan_jobs([job], config.replace(steps=3), digests).todo == [job]  # other settings: redo
    assert scan_jobs([job], config, digests, overwrite=True).todo == [job]


def test_example_config_file_has_only_known_keys() -> None:
    from clipstyler_opt.cli.batch import batch

    known = tuple(p.name for p in batch.params if p.name and p.name not in ("config", "quiet", "verbose"))
    values = load_toml(EXAMPLES / "batch.toml", known)
    assert values["prompt"] and values["output"] and values["inputs"]
