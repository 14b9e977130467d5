"""`clipopt batch` and `clipopt sweep`: every image of some folders x every prompt (x every
cell of a settings grid), resumable and shardable.

`run_batch(BatchSettings(...), StyleConfig(...))` is the programmatic entry point; the
modules split the work into discovery, the job list and its output names, the sweep grid,
the folder lock, the input guard, the manifest, the resume scan, the job runner, worker
processes and the torchrun plumbing.
"""

from clipstyler_opt.batch.discovery import Discovery, InputFile, SkippedInput, discover_inputs, looks_like_image, scan_inputs
from clipstyler_opt.batch.distributed import Distributed, launched_by_torchrun
from clipstyler_opt.batch.grid import SweepCell, cell_id, expand_grid, parse_vary
from clipstyler_opt.batch.jobs import Job, Shard, build_jobs, build_sweep_jobs, derive_seed, read_prompts_file, unique_prompts
from clipstyler_opt.batch.lock import LOCK_NAME, BatchLock, BatchLocked
from clipstyler_opt.batch.manifest import MANIFEST_NAME, ManifestWriter, ManifestWriteError, read_records
from clipstyler_opt.batch.records import Summary
from clipstyler_opt.batch.resume import DigestCache, expected_settings_hash, scan_jobs
from clipstyler_opt.batch.runner import BatchObserver, SilentObserver
from clipstyler_opt.batch.safety import InputGuard
from clipstyler_opt.batch.session import BatchPlan, BatchSettings, plan_batch, plan_jobs, run_batch
from clipstyler_opt.batch.workers import run_in_workers

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
