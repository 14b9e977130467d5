"""The job list of a batch: every input image x every prompt (x every cell of a sweep), with
its output path and seed.

Everything here is a pure function of the inputs, the prompts, the base settings and the
cells, so every rank, every `--shard` process, every worker and every rerun computes the same
list in the same order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from clipstyler_opt.batch.discovery import InputFile
from clipstyler_opt.batch.grid import SweepCell
from clipstyler_opt.batch.names import fs_bytes, output_names
from clipstyler_opt.batch.prompt_weights import prompt_record, weighted_prompt
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import ConfigError, OutputError
from clipstyler_opt.core.naming import prompt_slug
from clipstyler_opt.run.engine import BACKBONE_FIELDS

__all__ = [
    "Job",
    "Shard",
    "backbone_key",
    "build_jobs",
    "build_sweep_jobs",
    "derive_seed",
    "output_names",
    "read_prompts_file",
    "unique_prompts",
]

SEED_LIMIT = 2**31


@dataclass(frozen=True)
class Job:
    input: Path
    relative: str  # input path below its INPUT root (POSIX form)
    prompt: str
    output_name: str  # output path below the output folder (POSIX form)
    output: Path
    seed: int
    cell: SweepCell | None = None  # a sweep's cell: settings applied on top of the batch's

    @property
    def key(self) -> tuple[str, str]:
        """Unique within a batch; also the sort order of a batch's jobs (a sweep's come grouped by cell)."""
        return (self.prompt, self.output_name)

    @property
    def label(self) -> str:
        return f"{self.relative} | {self.prompt}" + (f" | {self.cell.id}" if self.cell else "")

    @property
    def run_prompt(self) -> str:
        """The prompt the job runs: its own, or, in a cell that sets the parts' weights (`mix`,
        `weights`), the prompt reweighted (see prompt_weights.py)."""
        weights = self.cell.weights if self.cell else None
        return self.prompt if weights is None else str(weighted_prompt(self.prompt, weights))

    def config(self, base: StyleConfig) -> StyleConfig:
        """The settings of this job (its cell's values on top of `base`), without its seed."""
        return self.cell.apply(base) if self.cell else base

    def extra_metadata(self) -> dict[str, Any]:
        """Entries added to the output's metadata: the cell of a sweep job, and in a cell that sets
        the parts' weights, the prompt it ran (`sweep.prompt`: declared, parts, weights, effective)."""
        if self.cell is None:
            return {}
        weights = self.cell.weights
        return {"sweep": self.cell.record() | ({"prompt": prompt_record(self.prompt, weights)} if weights else {})}


def backbone_key(config: StyleConfig) -> tuple[Any, ...]:
    """Settings that decide which backbones a Stylizer loads: equal keys can share one."""
    return tuple(getattr(config, name) for name in BACKBONE_FIELDS)


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
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


_MAX_PROMPTS_BYTES = 16 << 20


def read_prompts_file(path: Path) -> list[str]:
    """One prompt per line; blank lines and lines starting with '#' are ignored."""
    from clipstyler_opt.core.files import read_text

    text = read_text(path, limit=_MAX_PROMPTS_BYTES, what="prompts file")  # a FIFO is an error, not a hang
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def build_jobs(inputs: Sequence[InputFile], prompts: Sequence[str], output_dir: Path, *,
               suffix: str = ".png", base_seed: int = 0, cell: SweepCell | None = None) -> list[Job]:
    """Every input x every prompt, sorted by (prompt, output name); with `cell`, below a
    folder named after the cell."""
    names = output_names(inputs, suffix)
    top = PurePosixPath(cell.id) if cell else PurePosixPath()
    jobs = []
    for prompt in unique_prompts(prompts):
        slug = prompt_slug(prompt)
        for item in inputs:
            name = top / slug / names[item]
            relative = item.relative.as_posix()
            jobs.append(Job(input=item.path, relative=relative, prompt=prompt, output_name=name.as_posix(),
                            output=_safe_output(output_dir, name), seed=derive_seed(base_seed, relative, prompt),
                            cell=cell))
    return sorted(jobs, key=lambda job: job.key)


def build_sweep_jobs(inputs: Sequence[InputFile], prompts: Sequence[str], output_dir: Path,
                     cells: Sequence[SweepCell], base: StyleConfig, *, suffix: str = ".png") -> list[Job]:
    """Every cell x input x prompt. Cells that load the same backbones come together, in grid
    order otherwise, so a process loads each set of backbones once. A job's seed comes from the
    cell's base seed, the input and the prompt: cells differ only in the varied settings."""
    configs = [cell.apply(base) for cell in cells]
    groups: dict[tuple[Any, ...], int] = {}
    for config in configs:
        groups.setdefault(backbone_key(config), len(groups))
    order = sorted(range(len(cells)), key=lambda i: (groups[backbone_key(configs[i])], i))
    return [job for i in order
            for job in build_jobs(inputs, prompts, output_dir, suffix=suffix, base_seed=configs[i].seed,
                                  cell=cells[i])]
