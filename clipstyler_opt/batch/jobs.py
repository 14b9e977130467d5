"""The job list of a batch: every input image x every prompt, with its output path and seed.

Everything here is a pure function of the inputs, the prompts and the base seed, so every
rank, every `--shard` process and every rerun computes the same list in the same order.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence

from ..errors import ConfigError, OutputError
from ..naming import prompt_slug
from .discovery import InputFile
from .names import fs_bytes, output_names

__all__ = ["Job", "Shard", "derive_seed", "output_names", "build_jobs", "read_prompts_file", "unique_prompts"]

SEED_LIMIT = 2**31


@dataclass(frozen=True)
class Job:
    input: Path
    relative: str  # input path below its INPUT root (POSIX form)
    prompt: str
    output_name: str  # output path below the output folder (POSIX form)
    output: Path
    seed: int

    @property
    def key(self) -> tuple[str, str]:
        """Unique within a batch; also the sort order that shards are cut from."""
        return (self.prompt, self.output_name)

    @property
    def label(self) -> str:
        return f"{self.relative} | {self.prompt}"


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if match is None:
            raise ConfigError(f"--shard must look like I/N (e.g. 0/4), got {text!r}")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1 or not 0 <= index < count:
            raise ConfigError(f"--shard {text}: need 0 <= I < N")
        return cls(index, count)

    def take(self, jobs: Sequence[Job]) -> list[Job]:
        return list(jobs[self.index::self.count])

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def derive_seed(base_seed: int, relative_input: str, prompt: str) -> int:
    """Stable across machines and processes: depends only on the base seed, the input's path
    below its INPUT root and the prompt."""
    digest = hashlib.sha256(fs_bytes(f"{base_seed}\0{relative_input}\0{prompt}")).digest()
    return int.from_bytes(digest[:8], "big") % SEED_LIMIT


def _safe_output(folder: Path, name: PurePosixPath) -> Path:
    if name.is_absolute() or any(part in ("", ".", "..") for part in name.parts):
        raise OutputError(f"refusing output name {str(name)!r}: it would leave {folder}")
    return folder.joinpath(*name.parts)


def unique_prompts(prompts: Iterable[str]) -> list[str]:
    result: list[str] = []
    for prompt in prompts:
        if not prompt.strip():
            raise ConfigError("a style prompt is empty")
        if prompt not in result:
            result.append(prompt)
    return result


def read_prompts_file(path: Path) -> list[str]:
    """One prompt per line; blank lines and lines starting with '#' are ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read prompts file {path}: {exc}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def build_jobs(inputs: Sequence[InputFile], prompts: Sequence[str], output_dir: Path, *,
               suffix: str = ".png", base_seed: int = 0) -> list[Job]:
    """Every input x every prompt, sorted by (prompt, output name)."""
    names = output_names(inputs, suffix)
    jobs = []
    for prompt in unique_prompts(prompts):
        slug = prompt_slug(prompt)
        for item in inputs:
            name = PurePosixPath(slug) / names[item]
            relative = item.relative.as_posix()
            jobs.append(Job(input=item.path, relative=relative, prompt=prompt, output_name=name.as_posix(),
                            output=_safe_output(output_dir, name), seed=derive_seed(base_seed, relative, prompt)))
    return sorted(jobs, key=lambda job: job.key)
