"""Never lose a file: the defects closed through the file gate, each tried the way a careful or a
hostile user would. Real files, real FIFOs and links, the tiny checkpoints for the runs.

A check that hangs on a FIFO is caught by running the command in a thread: if it is still
running after a few seconds, the FIFO is opened for writing (which wakes a reader blocked on
it) and the test fails."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image
from test_batch_support import EXAMPLES, tiny_flags
from test_imageio import EPS, fake_ghostscript

from clipstyler_opt.cli import cli
from clipstyler_opt.core.naming import prompt_slug

PHOTO = EXAMPLES / "chelsea.png"


def invoke(*args: Any) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def one_line(output: str) -> bool:
    return len(output.strip().splitlines()) == 1 and "Traceback" not in output


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def without_hang(call: Callable[[], Any], fifos: list[Path], seconds: float = 10.0) -> Any:
    """`call()`'s result; fails (after waking the reader) when it is still running after `seconds`."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    hung = thread.is_alive()
    if hung:
        for fifo in fifos:  # a reader blocked in open() returns once a writer comes and goes
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(30)
    assert not hung, f"hung on a FIFO: {fifos}"
    if "error" in box:
        raise box["error"]
    return box["value"]


@pytest.fixture
def made(tmp_path: Path, tiny_paths: dict[str, Path]) -> Path:
    """One finished `clipopt run` output with an animation, 2 steps."""
    folder = tmp_path / "first"
    folder.mkdir()
    code, output = invoke("run", PHOTO, "oil", "-o", folder / "out.png", "--animation", folder / "progress.gif",
                          "-q", *tiny_flags(tiny_paths))
    assert code == 0, output
    return folder / "out.png"


@pytest.fixture(scope="module")
def result_folder(tmp_path_factory: pytest.TempPathFactory, tiny_paths: dict[str, Path]) -> Path:
    """A batch folder of one photo and one prompt (a template: tests copy it)."""
    base = tmp_path_factory.mktemp("batch")
    (base / "photos").mkdir()
    shutil.copy(PHOTO, base / "photos" / "cat.png")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLIPOPT_CACHE_DIR", str(base / "cache"))
        code, output = invoke("batch", base / "photos", "-p", "oil", "-o", base / "out", "-q", *tiny_flags(tiny_paths))
    assert code == 0, output
    return base / "out"


def copy_folder(template: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    shutil.copytree(template, folder, symlinks=True)
    return folder


# --- 1, 2: the animation never lands on the output or an input ---

def test_run_animation_onto_its_own_output_is_refused_before_weights_load(tmp_path: Path) -> None:
    out = tmp_path / "x.webp"
    code, output = invoke("run", PHOTO, "oil", "-o", out, "--animation", "webp", "--offline")
    assert code == 2 and one_line(output) and "x.webp" in output, output
    assert not out.exists()


def test_batch_animation_in_the_output_format_is_refused_before_any_job(tmp_path: Path,
                                                                         tiny_paths: dict[str, Path]) -> None:
    (tmp_path / "in").mkdir()
    shutil.copy(PHOTO, tmp_path / "in" / "cat.png")
    code, output = invoke("batch", tmp_path / "in", "-p", "oil", "-o", tmp_path / "out", "--format", "webp",
                          "--animation", "webp", *tiny_flags(tiny_paths))
    assert code == 2 and "--animation" in output, output
    assert not list((tmp_path / "out").rglob("*.webp")) if (tmp_path / "out").exists() else True


@pytest.mark.parametrize("victim", ["content", "style", "output", "sidecar"])
def test_run_animation_onto_an_input_or_the_output_is_refused(tmp_path: Path, victim: str) -> None:
    content = tmp_path / "cat.webp"
    Image.open(PHOTO).convert("RGB").save(content)
    style = tmp_path / "style.gif"
    Image.open(PHOTO).convert("RGB").save(style)
    out = tmp_path / "out.webp"
    out.write_bytes(b"previous output")
    out.with_name("out.webp.json").write_bytes(b"{}")
    before = {path: digest(path) for path in (content, style, out)}
    target = {"content": content, "style": style, "output": out,
              "sidecar": tmp_path / ".." / tmp_path.name / "out.webp"}[victim]
    code, output = invoke("run", content, "oil", "-o", out, "--style-image", style, "--animation", target,
                          "--offline")
    assert code == 2 and one_line(output), output
    assert {path: digest(path) for path in before} == before


def test_the_config_file_is_an_input_too(tmp_path: Path) -> None:
    settings = tmp_path / "settings.gif"  # a TOML file, whatever its name
    settings.write_text("steps = 2\n")
    code, output = invoke("run", PHOTO, "oil", "-o", tmp_path / "o.png", "--config", settings,
                          "--animation", tmp_path / "." / "settings.gif", "--offline")
    assert code == 2 and one_line(output) and "refusing to overwrite" in output, output
    assert settings.read_text() == "steps = 2\n"


def test_batch_animation_onto_an_input_inside_the_output_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "out" / prompt_slug("oil")
    folder.mkdir(parents=True)
    cat = folder / "cat.gif"
    Image.open(PHOTO).convert("RGB").save(cat)
    before = digest(cat)
    # No weights: the refusal must come before any weights load.
    code, output = invoke("batch", folder, "-p", "oil", "-o", tmp_path / "out", "--animation", "gif", "--offline")
    assert code == 8, output
    assert digest(cat) == before
    records = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert any("cat.gif" in str(record.get("error", "")) for record in records), records


# --- 3: a record supplies settings, never destinations ---

def test_run_from_never_writes_to_the_recorded_animation_path(made: Path, tmp_path: Path,
                                                              tiny_paths: dict[str, Path]) -> None:
    first = made.with_name("progress.gif")
    before = digest(first)
    again = tmp_path / "again"
    again.mkdir()
    code, output = invoke("run", "--from", made, "-o", again / "re.png", "-q")
    assert code == 0, output
    assert digest(first) == before
    assert (again / "re.gif").is_file()  # the recorded format, beside the new output


def test_a_forged_record_cannot_send_the_animation_outside(made: Path, tmp_path: Path) -> None:
    sidecar = made.with_name("out.png.json")
    record = json.loads(sidecar.read_text())
    victim = tmp_path / "elsewhere" / "victim.gif"
    victim.parent.mkdir()
    victim.write_bytes(b"not yours")
    record["config"]["animation"] = str(victim)
    sidecar.write_text(json.dumps(record))
    code, output = invoke("run", "--from", made, "-o", tmp_path / "re.png", "-q")
    assert code == 0, output
    assert victim.read_bytes() == b"not yours"


# --- 4: default names claim the animation too ---

def test_default_names_claim_the_animation_with_the_image(tmp_path: Path, tiny_paths: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(PHOTO, tmp_path / "c.png")
    for _ in range(2):
        code, output = invoke("run", "c.png", "oil", "--animation", "gif", "-q", *tiny_flags(tiny_paths))
        assert code == 0, output
    first = digest(tmp_path / "c-oil.gif")
    assert (tmp_path / "c-oil-2.png").is_file() and (tmp_path / "c-oil-2.gif").is_file()
    code, output = invoke("run", "c.png", "oil", "--animation", "gif", "-q", *tiny_flags(tiny_paths))
    assert code == 0 and digest(tmp_path / "c-oil.gif") == first
    assert (tmp_path / "c-oil-3.gif").is_file()


def test_a_stray_animation_name_moves_the_default_name_on(tmp_path: Path, tiny_paths: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(PHOTO, tmp_path / "c.png")
    (tmp_path / "c-oil.gif").write_bytes(b"someone's animation")
    code, output = invoke("run", "c.png", "oil", "--animation", "gif", "-q", *tiny_flags(tiny_paths))
    assert code == 0, output
    assert (tmp_path / "c-oil.gif").read_bytes() == b"someone's animation"
    assert not (tmp_path / "c-oil.png").exists() and (tmp_path / "c-oil-2.gif").is_file()


# --- 5: eval never writes over what it reads ---

def test_eval_json_onto_the_folders_manifest_is_refused(result_folder: Path, tmp_path: Path,
                                                         tiny_paths: dict[str, Path]) -> None:
    folder = copy_folder(result_folder, tmp_path)
    manifest = folder / "manifest.jsonl"
    before = digest(manifest)
    code, output = invoke("eval", folder, "--json", manifest, "--offline", "--device", "cpu")
    assert code == 2 and one_line(output) and "manifest.jsonl" in output, output
    assert digest(manifest) == before


def test_eval_csv_onto_the_scorers_weights_is_refused(result_folder: Path, tmp_path: Path,
                                                      tiny_paths: dict[str, Path]) -> None:
    import tiny

    folder = copy_folder(result_folder, tmp_path)
    weights = tmp_path / "scorer.pt"
    shutil.copy(tiny_paths["clip_checkpoint"], weights)
    before = digest(weights)
    code, output = invoke("eval", folder, "--scorer", f"{tiny.TINY_CLIP_NAME}/openai:file={weights}",
                          "--clip-model-config", tiny_paths["clip_model_config"], "--csv", weights,
                          "--vgg-checkpoint", tiny_paths["vgg_checkpoint"], "--offline", "--device", "cpu")
    assert code == 2 and one_line(output), output
    assert digest(weights) == before


def test_eval_json_and_csv_spelled_differently_are_one_file(result_folder: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    folder = copy_folder(result_folder, tmp_path)
    monkeypatch.chdir(tmp_path)
    code, output = invoke("eval", folder, "--json", "w/../m.json", "--csv", "m.json", "--offline")
    assert code == 2 and "same file" in output, output


# --- 6: downloads never follow a link or block on a FIFO at <dest>.part ---

def test_a_link_at_the_part_file_is_not_followed(tmp_path: Path) -> None:
    from clipstyler_opt.core.errors import WeightsError
    from clipstyler_opt.weights.download import download_file

    victim = tmp_path / "precious.bin"
    victim.write_bytes(b"precious")
    dest = tmp_path / "cache" / "vgg19-00000000.pth"
    dest.parent.mkdir()
    dest.with_name(dest.name + ".part").symlink_to(victim)
    with pytest.raises(WeightsError, match="symbolic link"):
        download_file("http://127.0.0.1:9/x", dest, sha256_prefix="00000000")
    assert victim.read_bytes() == b"precious"


def test_a_fifo_at_the_part_file_is_an_error_not_a_hang(tmp_path: Path) -> None:
    from clipstyler_opt.core.errors import WeightsError
    from clipstyler_opt.weights.download import download_file

    dest = tmp_path / "vgg19-00000000.pth"
    part = dest.with_name(dest.name + ".part")
    os.mkfifo(part)
    with pytest.raises(WeightsError, match="FIFO"):
        without_hang(lambda: download_file("http://127.0.0.1:9/x", dest, sha256_prefix="00000000"), [part])


# --- 9: report and study decode allow-listed formats only ---

def _replace_in_folder(root: Path, old: str, new: str) -> None:
    """Replace `old` by `new` in the manifest and every sidecar of a result folder (JSON-quoted)."""
    for path in [root / "manifest.jsonl", *root.rglob("*.json")]:
        path.write_text(path.read_text().replace(json.dumps(old), json.dumps(new)))


def _page_command(command: str, root: Path, tmp_path: Path) -> list[Any]:
    return (["report", root, "--embed", "-o", tmp_path / "report.html"] if command == "report"
            else ["study", "make", root, "-o", tmp_path / "study.html"])


@pytest.mark.parametrize("command", ["report", "study"])
def test_an_eps_listed_in_the_manifest_never_reaches_ghostscript(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 command: str) -> None:
    from PIL import EpsImagePlugin
    from test_report import make_result_folder

    root = make_result_folder(tmp_path, evaluation=False)
    marker = fake_ghostscript(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)
    listed = root / "prompt-0" / "lam-300" / "red.png"
    (listed.parent / "a.eps").write_bytes(EPS)
    shutil.copy(listed.with_name("red.png.json"), listed.with_name("a.eps.json"))
    _replace_in_folder(root, "prompt-0/lam-300/red.png", "prompt-0/lam-300/a.eps")
    code, output = invoke(*_page_command(command, root, tmp_path))
    assert not marker.exists()
    assert code == 3 and one_line(output) and "a.eps" in output, output


@pytest.mark.parametrize("command", ["report", "study"])
def test_a_manifest_naming_a_text_file_as_an_image_is_a_one_line_error(tmp_path: Path, command: str) -> None:
    from test_report import make_result_folder

    root = make_result_folder(tmp_path, evaluation=False)
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/sh\n")
    listed = root / "prompt-0" / "lam-300" / "red.png"
    shutil.copy(listed.with_name("red.png.json"), root / "passwd.json")
    os.link(passwd, root / "passwd")  # an output that is a text file, as a forged manifest can name one
    _replace_in_folder(root, "prompt-0/lam-300/red.png", "passwd")
    code, output = invoke(*_page_command(command, root, tmp_path))
    assert code == 3 and one_line(output) and "passwd" in output, output
    assert passwd.read_text().startswith("root:")


# --- 12, 23: FIFOs never hang a command and are called FIFOs ---

def test_run_with_fifos_in_the_caches_does_not_hang(tmp_path: Path, tiny_paths: dict[str, Path],
                                                    isolated_caches: Path) -> None:
    from clipstyler_opt.core.digests import clear_memory_cache, file_sha256, hash_cache_path

    cache = hash_cache_path()
    cache.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(cache)
    clear_memory_cache()
    assert without_hang(lambda: file_sha256(PHOTO), [cache]) == digest(PHOTO)


def test_a_fifo_text_cache_entry_is_a_miss_not_a_hang(tmp_path: Path) -> None:
    import torch

    from clipstyler_opt.method.textcache import TextCache

    cache = TextCache(tmp_path / "text")
    key = {"text": "oil", "model": "tiny"}
    cache.folder.mkdir()
    os.mkfifo(cache.path_for(key))
    assert without_hang(lambda: cache.load(key), [cache.path_for(key)]) is None
    assert without_hang(lambda: cache.save(key, torch.ones(3)), [cache.path_for(key)])
    assert torch.equal(cache.load(key), torch.ones(3))


@pytest.mark.parametrize("case", ["config", "prompts-file", "weights-info", "study-analyze"])
def test_a_fifo_given_as_a_file_is_named_a_fifo_and_never_waited_on(tmp_path: Path, case: str) -> None:
    fifo = tmp_path / {"config": "c.toml", "prompts-file": "p.txt", "weights-info": "w.pt",
                       "study-analyze": "answers.csv"}[case]
    os.mkfifo(fifo)
    (tmp_path / "in").mkdir()
    shutil.copy(PHOTO, tmp_path / "in" / "cat.png")
    args = {"config": ["run", PHOTO, "oil", "--config", fifo, "-o", tmp_path / "o.png", "--offline"],
            "prompts-file": ["batch", tmp_path / "in", "--prompts-file", fifo, "-o", tmp_path / "out", "--offline"],
            "weights-info": ["weights", "info", fifo],
            "study-analyze": ["study", "analyze", fifo]}[case]
    code, output = without_hang(lambda: invoke(*args), [fifo])
    expected = {"config": 2, "prompts-file": 2, "weights-info": 4, "study-analyze": 2}[case]
    assert code == expected and one_line(output) and "FIFO" in output, output


def test_weights_verify_reports_a_fifo_hub_blob(tmp_path: Path) -> None:
    from test_weights_cli import fill_hf_blob_cache

    cache = tmp_path / "extra"
    link = fill_hf_blob_cache(cache, "timm/vit_base_patch32_clip_224.openai", "open_clip_pytorch_model.bin",
                              b"x" * 100)
    blob = link.resolve()
    blob.unlink()
    os.mkfifo(blob)
    code, output = without_hang(lambda: invoke("weights", "verify", "--cache-dir", cache), [blob])
    assert code == 4 and "FIFO" in output, output


def test_an_input_fifo_is_called_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    code, output = without_hang(lambda: invoke("run", fifo, "x", "-o", tmp_path / "o.png"), [fifo])
    assert code == 3 and "is a FIFO, not a regular file" in output and one_line(output), output


@pytest.mark.parametrize("case", ["info", "run-from", "eval", "style-image", "vgg-checkpoint"])
def test_a_fifo_is_never_called_a_missing_file(tmp_path: Path, case: str) -> None:
    fifo = tmp_path / ("pipe.png" if case != "vgg-checkpoint" else "vgg.pth")
    os.mkfifo(fifo)
    args = {"info": ["info", fifo], "run-from": ["run", "--from", fifo, "-o", tmp_path / "o.png"],
            "eval": ["eval", fifo, "--offline"],
            "style-image": ["run", PHOTO, "oil", "--style-image", fifo, "-o", tmp_path / "o.png", "--offline"],
            "vgg-checkpoint": ["run", PHOTO, "oil", "--vgg-checkpoint", fifo, "-o", tmp_path / "o.png"]}[case]
    code, output = without_hang(lambda: invoke(*args), [fifo])
    assert code in (3, 4) and one_line(output) and "is a FIFO, not a regular file" in output, output
    assert "no such file" not in output


# --- 13: the preflight covers --output-size and the animation's destination ---

def test_output_size_is_counted_in_the_disk_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil as shutil_module

    real = shutil_module.disk_usage
    free = 4 * 512 * 512 * 2  # room for a 512-px working image, not for a 3000-px render

    def small_disk(path: Any) -> Any:
        usage = real(path)
        return type(usage)(usage.total, usage.total - free, free)

    monkeypatch.setattr(shutil_module, "disk_usage", small_disk)
    code, output = invoke("run", PHOTO, "oil", "-o", tmp_path / "o.png", "--output-size", "3000", "--offline")
    assert code == 5 and one_line(output), output


def test_an_unwritable_animation_path_fails_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"a file, not a folder")
    # No weights and --offline: a check made only after the run would end in exit 4 instead.
    code, output = invoke("run", PHOTO, "oil", "-o", tmp_path / "o.png", "--animation", tmp_path / "file" / "a.gif",
                          "--offline")
    assert code == 5 and one_line(output) and "a.gif" in output, output
    assert not (tmp_path / "o.png").exists()
