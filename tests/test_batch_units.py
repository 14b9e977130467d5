"""Batch building blocks that need no backbones: discovery, names, seeds, shards, manifest."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path, PurePosixPath

import pytest
from test_batch_support import EXAMPLES, fails_if_blocked, make_photo_folder, make_special_files

from clipstyler_opt import StyleConfig
from clipstyler_opt.batch import (
    LOCK_NAME,
    MANIFEST_NAME,
    BatchLock,
    BatchLocked,
    DigestCache,
    InputGuard,
    ManifestWriteError,
    ManifestWriter,
    Shard,
    build_jobs,
    derive_seed,
    discover_inputs,
    expected_settings_hash,
    looks_like_image,
    read_prompts_file,
    read_records,
    scan_inputs,
    scan_jobs,
)
from clipstyler_opt.batch.discovery import InputFile
from clipstyler_opt.batch.manifest import journal_path, json_line, merge_stale_journals
from clipstyler_opt.batch.names import output_names
from clipstyler_opt.core.config_files import load_toml
from clipstyler_opt.core.errors import ConfigError, InputImageError, OutputError
from clipstyler_opt.run.images import sidecar_path

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


# --- any file name, special files, the batch's own files ---

def test_discovery_never_opens_special_files_and_says_why_it_skipped_them(tmp_path: Path) -> None:
    expected = make_special_files(tmp_path / "mixed")
    with fails_if_blocked():
        found = scan_inputs([str(tmp_path / "mixed")])
    assert _relatives(found.inputs) == ["chelsea.png"]
    assert {item.path.name: item.reason for item in found.skipped} == expected  # x.png/ is a folder: not searched
    with fails_if_blocked():
        assert not looks_like_image(tmp_path / "mixed" / "pipe.png")
        globbed = scan_inputs([str(tmp_path / "mixed" / "*.png")])
    assert _relatives(globbed.inputs) == ["chelsea.png"]
    assert {item.path.name for item in globbed.skipped} == set(expected) - {"notes.txt"}
    with fails_if_blocked(), pytest.raises(InputImageError, match="FIFO"):
        scan_inputs([str(tmp_path / "mixed" / "pipe.png")])  # named explicitly: still never opened


def test_seed_of_a_non_utf8_name_is_the_hash_of_its_bytes() -> None:
    by_definition = hashlib.sha256(b"7\0caf\xe9.png\0starry night").digest()
    expected = int.from_bytes(by_definition[:8], "big") % 2**31
    assert derive_seed(7, os.fsdecode(b"caf\xe9.png"), "starry night") == expected
    assert derive_seed(7, "café.png", "p") == derive_seed(7, "caf\u00e9.png", "p")  # UTF-8 names: unchanged


def test_output_names_are_valid_utf8_unique_and_leave_room_for_the_sidecar(tmp_path: Path) -> None:
    long_stem = "x" * 251
    relatives = [os.fsdecode(b"caf\xe9.jpg"), os.fsdecode(b"caf\xe8.jpg"), "caf%E9.jpg", "new\nline.jpg",
                 f"{long_stem}.jpg", f"{long_stem}.jpeg", f"{long_stem}y.jpg"[:255], "plain.jpg"]
    items = [InputFile(tmp_path / r, tmp_path, PurePosixPath(r)) for r in relatives]
    names = {item.relative.as_posix(): name.as_posix() for item, name in output_names(items, ".png").items()}
    assert names["plain.jpg"] == "plain.png" and names["new\nline.jpg"] == "new%0Aline.png"
    assert names[os.fsdecode(b"caf\xe8.jpg")] == "caf%E8.png"  # the byte 0xE8 spelled out
    assert len({name.casefold() for name in names.values()}) == len(items)
    for name in names.values():
        assert name.isprintable() and len((name + ".json").encode("utf-8")) <= 255  # strict UTF-8 encodes
    assert names[f"{long_stem}.jpg"].endswith(".png") and names[f"{long_stem}.jpg"].startswith("x" * 200)


def test_manifest_lines_keep_any_file_name_exactly(tmp_path: Path) -> None:
    name = os.fsdecode(b"/photos/caf\xe9\n.png")
    record = {"record": "job", "input": name, "prompt": "夜空 starry night"}
    line = json_line(record)
    assert "夜空" in line and "\\udce9" in line and line.count("\n") == 1 and line.endswith("\n")
    with ManifestWriter(tmp_path / MANIFEST_NAME) as writer:
        writer.append(record)
    [back] = read_records(tmp_path / MANIFEST_NAME)
    assert back == record and os.fsencode(back["input"]) == b"/photos/caf\xe9\n.png"
    (tmp_path / MANIFEST_NAME).read_bytes().decode("utf-8")  # the file itself is valid UTF-8


def test_manifest_is_never_written_through_a_link_or_into_a_fifo(tmp_path: Path) -> None:
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"precious")
    linked = tmp_path / "linked" / MANIFEST_NAME
    linked.parent.mkdir()
    linked.symlink_to(victim)
    with pytest.raises(ManifestWriteError, match="symbolic link"):
        ManifestWriter(linked)
    assert victim.read_bytes() == b"precious"
    fifo = tmp_path / "fifo" / MANIFEST_NAME
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    with fails_if_blocked():
        with pytest.raises(ManifestWriteError, match="not a regular file"):
            ManifestWriter(fifo)
        with pytest.raises(ManifestWriteError, match="not a regular file"):
            read_records(fifo)


def test_input_guard_knows_inputs_through_links(tmp_path: Path) -> None:
    photo = tmp_path / "in" / "chelsea.png"
    photo.parent.mkdir()
    shutil.copy(EXAMPLES / "chelsea.png", photo)
    guard = InputGuard([photo])
    (tmp_path / "soft.png").symlink_to(photo)
    os.link(photo, tmp_path / "hard.png")
    shutil.copy(photo, tmp_path / "copy.png")
    assert guard.input_at(tmp_path / "soft.png") == photo and guard.input_at(tmp_path / "hard.png") == photo
    assert guard.input_at(tmp_path / "in" / ".." / "in" / "chelsea.png") == photo
    assert guard.input_at(tmp_path / "copy.png") is None and guard.input_at(tmp_path / "absent.png") is None
    [job] = build_jobs([InputFile(photo, photo.parent, PurePosixPath("chelsea.png"))], ["p"], tmp_path / "out")
    assert guard.refusal(job) is None
    job.output.parent.mkdir(parents=True)
    sidecar_path(job.output).symlink_to(photo)
    assert "is a symbolic link to the input" in (guard.refusal(job) or "")
    frame = tmp_path / "out" / "p" / "chelsea_frames" / "00001.png"  # an input where --save-every writes
    frame.parent.mkdir(parents=True)
    shutil.copy(photo, frame)
    [framed] = build_jobs([InputFile(frame, frame.parent, PurePosixPath("chelsea.png"))], ["p"], tmp_path / "out")
    framed = replace(framed, output=tmp_path / "out" / "p" / "chelsea.png")
    assert InputGuard([frame]).refusal(framed) is None
    assert "refusing to write frames into" in (InputGuard([frame]).refusal(framed, frames=True) or "")


def test_one_batch_per_folder_but_shards_side_by_side(tmp_path: Path) -> None:
    assert BatchLocked.exit_code == 10
    with BatchLock(tmp_path):
        for shard in (None, Shard(0, 2)):
            with pytest.raises(BatchLocked, match="in use by another clipopt batch"):
                BatchLock(tmp_path, shard)
    with BatchLock(tmp_path, Shard(0, 2)), BatchLock(tmp_path, Shard(1, 2)):
        with pytest.raises(BatchLocked, match=r"shard 1/2 .* already being run"):
            BatchLock(tmp_path, Shard(1, 2))
        with pytest.raises(BatchLocked, match="in use"):
            BatchLock(tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME, f"{LOCK_NAME}.shard-0-of-2",
                                                             f"{LOCK_NAME}.shard-1-of-2"]
    assert [p.name for p in tmp_path.iterdir()] == [LOCK_NAME]  # shard lock files go with their shard
    with BatchLock(tmp_path):
        pass  # free again


def test_lock_file_is_never_a_link_and_a_file_system_without_flock_is_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / LOCK_NAME).symlink_to(victim)
    with pytest.raises(OutputError, match="symbolic link"):
        BatchLock(tmp_path / "linked")
    assert victim.read_text() == "precious"

    def no_flock(fd: int, operation: int) -> None:  # what Lustre without -o flock answers
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

    monkeypatch.setattr(fcntl, "flock", no_flock)
    package_log = logging.getLogger("clipstyler_opt")  # the CLI tests leave their own handler on it
    monkeypatch.setattr(package_log, "handlers", [])
    monkeypatch.setattr(package_log, "propagate", True)
    with caplog.at_level(logging.WARNING, logger="clipstyler_opt"), BatchLock(tmp_path):
        pass
    assert "has no flock" in caplog.text and "nothing keeps a second batch out" in caplog.text
