"""Folders made by an earlier version resume with nothing to redo (settings hashes and sweep
cell ids are stable). The folders under tests/data/legacy were written before the package was
split into layers; see the README there."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from toy import register_toy

from clipstyler_opt.cli import main

LEGACY = Path(__file__).parent / "data" / "legacy"
FLAGS = ["--backbone", "toy-colour", "--templates", "none", "--size", "32", "--steps", "2", "--crops", "2",
         "--crop-size", "16", "--device", "cpu", "--precision", "fp32"]


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix != ".jsonl" and not p.name.startswith(".")}


def _last_run(manifest: Path) -> list[dict[str, object]]:
    records = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    last = records[-1]["run"]
    return [r for r in records if r.get("run") == last and r.get("record") == "job"]


@pytest.mark.parametrize("command", ["batch", "sweep"])
def test_a_folder_made_before_the_layers_resumes_with_nothing_to_redo(tmp_path: Path, command: str) -> None:
    register_toy()
    copy = tmp_path / "legacy"
    shutil.copytree(LEGACY, copy)
    vary = ["--vary", "lambda_content=50,150", "--vary", "contrast=yes,no", "--vary", "style_strength=none,0.25"]
    prompts = ["-p", "red", "-p", "green:0.7 | blue:0.3"] if command == "batch" else ["-p", "red", *vary]
    before = _digests(copy / command)
    code = main([command, str(copy / "inputs"), *prompts, "-o", str(copy / command), "-q",
                 "--vgg-checkpoint", str(copy / "identity-vgg19.pth"), *FLAGS])
    assert code == 0
    jobs = _last_run(copy / command / "manifest.jsonl")
    assert len(jobs) == (4 if command == "batch" else 16)
    assert {job["status"] for job in jobs} == {"skipped"}
    assert _digests(copy / command) == before
