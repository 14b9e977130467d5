"""`clipopt batch` and `clipopt sweep`: every image of some folders x every prompt (x every
cell of a settings grid), resumable and shardable.

`run_batch(BatchSettings(...), StyleConfig(...))` is the programmatic entry point; the
modules split the work into discovery, the job list and its output names, the sweep grid,
the folder lock, the input guard, the manifest, the resume scan, the job runner, worker
processes and the torchrun plumbing.
"""

from .discovery import Discovery, InputFile, SkippedInput, discover_inputs, looks_like_image, scan_inputs
from .distributed import Distributed, launched_by_torchrun
from .grid import SweepCell, cell_id, expand_grid, parse_vary
from .jobs import Job, Shard, build_jobs, build_sweep_jobs, derive_seed, read_prompts_file, unique_prompts
from .lock import LOCK_NAME, BatchLock, BatchLocked
from .manifest import MANIFEST_NAME, ManifestWriter, ManifestWriteError, read_records
from .records import Summary
from .resume import DigestCache, expected_settings_hash, scan_jobs
from .runner import BatchObserver, SilentObserver
from .safety import InputGuard
from .session import BatchPlan, BatchSettings, plan_batch, plan_jobs, run_batch
from .workers import run_in_workers

__all__ = [
    "BatchSettings",
    "BatchPlan",
    "run_batch",
    "plan_batch",
    "plan_jobs",
    "Summary",
    "BatchObserver",
    "SilentObserver",
    "InputFile",
    "SkippedInput",
    "Discovery",
    "scan_inputs",
    "discover_inputs",
    "looks_like_image",
    "BatchLock",
    "BatchLocked",
    "LOCK_NAME",
    "InputGuard",
    "ManifestWriteError",
    "Job",
    "Shard",
    "build_jobs",
    "build_sweep_jobs",
    "SweepCell",
    "parse_vary",
    "expand_grid",
    "cell_id",
    "run_in_workers",
    "derive_seed",
    "read_prompts_file",
    "unique_prompts",
    "MANIFEST_NAME",
    "ManifestWriter",
    "read_records",
    "DigestCache",
    "expected_settings_hash",
    "scan_jobs",
    "Distributed",
    "launched_by_torchrun",
]
