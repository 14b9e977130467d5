"""The file gate: every read of a user's file or result folder and every write goes through here.

- Reads open regular files only (a FIFO, socket, device or folder is a one-line error saying what
  it is, and nothing blocks), with size limits. Image decoding lives above the core (Pillow) in
  `clipstyler_opt.run.images`, which applies the format allow-list on top of these reads.
- Writes are atomic (a temporary beside the target, fsynced, renamed), never land on a file the
  command reads (a `ReadSet`, compared by identity so links and `..` do not matter), never write
  through a symbolic link whose name the program chose, and claim a default name together with
  its companions (sidecar, animation) with hard links, so nothing is clobbered.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> settings = folder / "settings.toml"
    >>> _ = write_atomic(settings, lambda fh: fh.write(b"steps = 10\\n"))
    >>> reads = ReadSet([settings])
    >>> read_text(settings, what="config file")
    'steps = 10\\n'
    >>> write_atomic(folder / "report.txt", lambda fh: fh.write(b"ok"), reads=reads).name
    'report.txt'
"""

from clipstyler_opt.core.files.identity import ReadSet, file_identity, refuse_one_file_twice, same_file
from clipstyler_opt.core.files.reading import (
    describe_os_error,
    file_kind,
    is_regular,
    not_a_file,
    open_for_reading,
    open_regular,
    read_bytes,
    read_regular,
    read_text,
)
from clipstyler_opt.core.files.writing import (
    TEMP_PREFIX,
    TEMP_SUFFIX,
    cannot_write,
    claim_together,
    discard,
    exclusive_lock,
    rename_into_place,
    scratch_folder,
    write_atomic,
    write_bytes,
    write_temp,
)

__all__ = [
    "TEMP_PREFIX",
    "TEMP_SUFFIX",
    "ReadSet",
    "cannot_write",
    "claim_together",
    "describe_os_error",
    "discard",
    "exclusive_lock",
    "file_identity",
    "file_kind",
    "is_regular",
    "not_a_file",
    "open_for_reading",
    "open_regular",
    "read_bytes",
    "read_regular",
    "read_text",
    "refuse_one_file_twice",
    "rename_into_place",
    "same_file",
    "scratch_folder",
    "write_atomic",
    "write_bytes",
    "write_temp",
]
