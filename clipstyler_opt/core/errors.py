"""The toolkit's error types. Each carries the process exit code the CLI maps it to.

The table in README.md ("Exit codes") is generated from the same numbers.
"""

from __future__ import annotations

__all__ = [
    "EXIT_CODES",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_STDOUT_CLOSED",
    "EXIT_USAGE",
    "BatchFailures",
    "ClipoptError",
    "ConfigError",
    "DeviceError",
    "InputImageError",
    "OptimisationError",
    "OutputError",
    "ResourceError",
    "WeightsError",
]

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_STDOUT_CLOSED = 141  # as for a process ended by SIGPIPE


class ClipoptError(Exception):
    """Base class: an error the user can act on, reported as one line."""

    exit_code = EXIT_INTERNAL


class ConfigError(ClipoptError):
    """An option or config-file value is invalid."""

    exit_code = EXIT_USAGE


class InputImageError(ClipoptError):
    """The content image is missing, unreadable, corrupt, too large or of an absurd size."""

    exit_code = 3


class WeightsError(ClipoptError):
    """Backbone weights were not found locally and could not (or may not) be downloaded."""

    exit_code = 4


class OutputError(ClipoptError):
    """The output file or folder cannot be written."""

    exit_code = 5


class DeviceError(ClipoptError):
    """The requested device does not exist on this machine."""

    exit_code = 6


class OptimisationError(ClipoptError):
    """The optimisation could not produce a finite image (e.g. every step's loss was non-finite)."""

    exit_code = 7


class BatchFailures(ClipoptError):
    """A batch finished, but at least one job failed."""

    exit_code = 8


class ResourceError(ClipoptError):
    """The run would not fit, or did not fit, in the device's memory."""

    exit_code = 9


EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_INTERNAL: "unexpected internal error (-v, on the commands that have it, shows the traceback)",
    EXIT_USAGE: "invalid command line, option or config file, or an output that would overwrite an input",
    InputImageError.exit_code: "input image missing, unreadable, not a regular file, over the size limit, "
                               "not in an accepted format, corrupt, a decompression bomb, or of an absurd size",
    WeightsError.exit_code: "backbone weights missing and not downloadable (offline or no network), or corrupt",
    OutputError.exit_code: "output cannot be written (folder not writable, disk full, name too long, "
                           "unknown extension)",
    DeviceError.exit_code: "requested device is not available",
    OptimisationError.exit_code: "optimisation failed (loss or gradient non-finite for 10 steps in a row, "
                                 "or on every step)",
    BatchFailures.exit_code: "batch finished but some jobs failed (see the manifest)",
    ResourceError.exit_code: "not enough memory for this run (the message names a smaller --size/--crops)",
    10: "another batch is using the output folder (or the same shard is running)",  # batch.lock.BatchLocked
    EXIT_INTERRUPTED: "interrupted (Ctrl-C or SIGTERM); finished outputs are kept, a rerun resumes",
    EXIT_STDOUT_CLOSED: "standard output was closed early (e.g. piped into head); the rest is dropped quietly",
}
