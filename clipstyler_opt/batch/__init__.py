"""`clipopt batch`: every image of some folders x every prompt, resumable and shardable.

`run_batch(BatchSettings(...), StyleConfig(...))` is the programmatic entry point; the
modules split the work into discovery, the job list, the manifest, the resume scan, the
job runner and the torchrun plumbing.
"""

from .discovery import InputFile, discover_inputs, looks_like_image
from .distributed import Distributed, launched_by_torchrun
from .jobs import Job, Shard, build_jobs, derive_seed, read_prompts_file, unique_prompts
from .manifest import MANIFEST_NAME, ManifestWriter, read_records
from .records import Summary
from .resume import DigestCache, expected_settings_hash, scan_jobs
from .runner import BatchObserver, SilentObserver
from .session import BatchSettings, plan_jobs, run_batch

__all__ = [
    "BatchSettings",
    "run_batch",
    "plan_jobs",
    "Summary",
    "BatchObserver",
    "SilentObserver",
    "InputFile",
    "discover_inputs",
    "looks_like_image",
    "Job",
    "Shard",
    "build_jobs",
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
