"""`clipopt batch` and `clipopt sweep`: every image of some folders x every prompt (x every
cell of a settings grid), resumable and shardable.

`run_batch(BatchSettings(...), StyleConfig(...))` is the programmatic entry point; the
modules split the work into discovery, the job list and its output names, the sweep grid,
the folder lock, the input guard, the manifest, the resume scan, the job runner, worker
processes and the torchrun plumbing.
"""

from clipstyler_opt.batch.discovery import (
    Discovery,
    InputFile,
    SkippedInput,
    discover_inputs,
    looks_like_image,
    scan_inputs,
)
from clipstyler_opt.batch.distributed import Distributed, launched_by_torchrun
from clipstyler_opt.batch.grid import SweepCell, cell_id, expand_grid, parse_vary
from clipstyler_opt.batch.jobs import (
    Job,
    Shard,
    build_jobs,
    build_sweep_jobs,
    derive_seed,
    read_prompts_file,
    unique_prompts,
)
from clipstyler_opt.batch.lock import LOCK_NAME, BatchLock, BatchLocked
from clipstyler_opt.batch.manifest import MANIFEST_NAME, ManifestWriteError, ManifestWriter, read_records
from clipstyler_opt.batch.records import Summary
from clipstyler_opt.batch.resume import DigestCache, expected_settings_hash, scan_jobs
from clipstyler_opt.batch.runner import BatchObserver, SilentObserver
from clipstyler_opt.batch.safety import InputGuard
from clipstyler_opt.batch.session import BatchPlan, BatchSettings, plan_batch, plan_jobs, run_batch
from clipstyler_opt.batch.workers import run_in_workers

__all__ = [
    "LOCK_NAME",
    "MANIFEST_NAME",
    "BatchLock",
    "BatchLocked",
    "BatchObserver",
    "BatchPlan",
    "BatchSettings",
    "DigestCache",
    "Discovery",
    "Distributed",
    "InputFile",
    "InputGuard",
    "Job",
    "ManifestWriteError",
    "ManifestWriter",
    "Shard",
    "SilentObserver",
    "SkippedInput",
    "Summary",
    "SweepCell",
    "build_jobs",
    "build_sweep_jobs",
    "cell_id",
    "derive_seed",
    "discover_inputs",
    "expand_grid",
    "expected_settings_hash",
    "launched_by_torchrun",
    "looks_like_image",
    "parse_vary",
    "plan_batch",
    "plan_jobs",
    "read_prompts_file",
    "read_records",
    "run_batch",
    "run_in_workers",
    "scan_inputs",
    "scan_jobs",
    "unique_prompts",
]
