"""The file gate (clipstyler_opt/core/files): regular files only, no hang on special files, size
limits, identity of files however spelled, atomic writes, default names claimed with their
companions. Checked on real files, FIFOs, sockets and links."""

from __future__ import annotations

import ast
import errno
import os
import re
import socket
import stat
from pathlib import Path

import pytest

from clipstyler_opt.core.errors import ConfigError, InputImageError, OutputError
from clipstyler_opt.core.files import (
    ReadSet,
    claim_together,
    open_regular,
    read_bytes,
    read_regular,
    refuse_one_file_twice,
    same_file,
    write_atomic,
    write_temp,
)


def test_special_files_are_refused_by_what_they_are_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock"))
        cases = {fifo: "is a FIFO, not a regular file", tmp_path: "is a folder, not a regular file",
                 Path("/dev/null"): "is a character device, not a regular file",
                 tmp_path / "sock": "is a socket, not a regular file"}
        for path, words in cases.items():
            for flags in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR | os.O_CREAT):
                with pytest.raises(OSError) as caught:
                    os.close(open_regular(path, flags))
                assert caught.value.strerror == words, (path, flags)
    with pytest.raises(InputImageError, match=r"^image .*pipe: is a FIFO, not a regular file$"):
        read_bytes(fifo, error=InputImageError, what="image")
    with pytest.raises(ConfigError, match="no such file"):
        read_bytes(tmp_path / "absent")


def test_a_final_link_is_followed_only_when_asked(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(b"data")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert read_regular(tmp_path / "link") == b"data"
    with pytest.raises(OSError, match="symbolic link, which is not followed"):
        read_regular(tmp_path / "link", follow_links=False)
    with pytest.raises(OSError, match="symbolic link"):
        open_regular(tmp_path / "link", os.O_RDWR | os.O_CREAT, follow_links=False)
    assert (tmp_path / "real").read_bytes() == b"data"


def test_size_limit_is_exact(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 100)
    assert len(read_regular(tmp_path / "f", 100)) == 100
    with pytest.raises(OSError) as caught:
        read_regular(tmp_path / "f", 99)
    assert caught.value.errno == errno.EFBIG


def test_one_file_however_spelled(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    original = tmp_path / "w" / "input.png"
    original.write_bytes(b"in")
    os.link(original, tmp_path / "hard.png")
    (tmp_path / "soft.png").symlink_to(original)
    reads = ReadSet([original, None])
    for alias in (tmp_path / "w" / ".." / "w" / "input.png", tmp_path / "hard.png", tmp_path / "soft.png"):
        assert reads.source_of(alias) == original
        assert same_file(alias, original)
        with pytest.raises(ConfigError, match="refusing to overwrite"):
            reads.refuse(alias)
    assert reads.source_of(tmp_path / "other.png") is None
    # names of files that do not exist yet compare by their resolved path
    assert same_file(tmp_path / "x" / ".." / "m.json", tmp_path / "m.json")
    refuse_one_file_twice([("--json", tmp_path / "a.json"), ("--csv", tmp_path / "a.csv"), ("--x", None)])
    with pytest.raises(ConfigError, match="--json and --csv name the same file"):
        refuse_one_file_twice([("--json", tmp_path / "x" / ".." / "m.json"), ("--csv", tmp_path / "m.json")])
    (tmp_path / "alias").symlink_to(tmp_path / "w")  # a folder reached two ways; the file does not exist yet
    with pytest.raises(ConfigError, match="same file"):
        refuse_one_file_twice([("--json", tmp_path / "alias" / "m.json"), ("--csv", tmp_path / "w" / "m.json")])


def test_atomic_write_replaces_a_link_never_its_target_and_leaves_no_temporary(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (tmp_path / "out").symlink_to(victim)
    write_atomic(tmp_path / "out", lambda fh: fh.write(b"new"))
    assert victim.read_bytes() == b"keep" and not (tmp_path / "out").is_symlink()
    assert (tmp_path / "out").read_bytes() == b"new"
    mode = stat.S_IMODE((tmp_path / "out").stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask

    def broken(fh: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match="No space left"):
        write_atomic(tmp_path / "out", broken)
    assert (tmp_path / "out").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "victim"]
    with pytest.raises(ConfigError):
        write_atomic(tmp_path / "victim", lambda fh: fh.write(b"x"), reads=ReadSet([tmp_path / "out", victim]))
    assert victim.read_bytes() == b"keep"


def test_a_default_name_is_claimed_with_all_its_companions_or_not_at_all(tmp_path: Path) -> None:
    image = write_temp(tmp_path, lambda fh: fh.write(b"image"), tmp_path / "a.png")
    sidecar = write_temp(tmp_path, lambda fh: fh.write(b"{}"), tmp_path / "a.png.json")
    (tmp_path / "a-2.gif").write_bytes(b"someone's animation")
    (tmp_path / "a.png.json").write_bytes(b"someone's sidecar")
    staged = [(image, lambda c: c), (sidecar, lambda c: c.with_name(c.name + ".json")),
              (image, lambda c: c.with_suffix(".gif"))]
    names = [tmp_path / "a.png", tmp_path / "a-2.png", tmp_path / "a-3.png"]
    assert claim_together(staged, names) == tmp_path / "a-3.png"
    assert not (tmp_path / "a.png").exists() and not (tmp_path / "a-2.png").exists()
    assert (tmp_path / "a-2.gif").read_bytes() == b"someone's animation"
    assert (tmp_path / "a-3.gif").read_bytes() == b"image" and (tmp_path / "a-3.png.json").read_bytes() == b"{}"
    assert claim_together(staged, names[:2]) is None



# --- nothing bypasses the gate ---

PACKAGE = Path(__file__).resolve().parents[1] / "clipstyler_opt"
# Only the gate may open, replace, link or create temporary files, and only run/images.py (the
# format allow-list, above the core because it needs Pillow) may decode an image file.
GATE_MODULES = {"core/files/reading.py", "core/files/writing.py", "run/images.py"}
FORBIDDEN_CALLS = {"open", "io.open", "os.open", "os.replace", "os.rename", "os.link", "os.symlink",
                   "Image.open", "shutil.copy", "shutil.copyfile", "shutil.copy2", "shutil.move", "os.mkfifo"}
FORBIDDEN_METHODS = {"read_text", "read_bytes", "write_text", "write_bytes"}
# What the package opens that is no user's file: its own templates, /dev/null, the kernel's /proc and /sys.
NOT_USER_FILES = re.compile(r"resources\.files\(|os\.devnull|/proc/|_STATUS\b|_CLEAR_REFS\b|"
                            r"\(root / (limit|usage)_file\)")


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def bypasses(source: str) -> list[tuple[int, str]]:
    """(line, call) of each file access in `source` that does not go through the gate."""
    found = []
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source)):
        name = ""
        if isinstance(node, ast.Call):
            called = _dotted(node.func)
            if called in FORBIDDEN_CALLS or called.startswith("tempfile."):
                name = called
            elif isinstance(node.func, ast.Attribute) and node.func.attr in FORBIDDEN_METHODS:
                name = f".{node.func.attr}()"
        elif isinstance(node, ast.Attribute) and _dotted(node).startswith("tempfile."):
            name = _dotted(node)
        if name and not NOT_USER_FILES.search(lines[node.lineno - 1]):
            found.append((node.lineno, name))
    return sorted(set(found))


def test_the_bypass_check_sees_each_kind_of_access() -> None:
    planted = ("import os, tempfile\nfrom pathlib import Path\nfrom PIL import Image\n"
               "open('x', 'w')\nos.replace('a', 'b')\nPath('x').write_text('y')\nImage.open('x.eps')\n"
               "tempfile.mkstemp()\nwith tempfile.TemporaryDirectory() as d: pass\nPath('/proc/meminfo').read_text()\n"
               "'''open(x) in a docstring'''\n")
    assert bypasses(planted) == [
        (4, "open"), (5, "os.replace"), (6, ".write_text()"), (7, "Image.open"), (8, "tempfile.mkstemp"),
        (9, "tempfile.TemporaryDirectory")]


def test_no_reader_or_writer_bypasses_the_gate() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative not in GATE_MODULES:
            offenders += [f"{relative}:{line}: {name}" for line, name in bypasses(path.read_text())]
    assert not offenders, "read and write files through clipstyler_opt.core.files:\n" + "\n".join(offenders)
