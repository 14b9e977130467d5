"""Reading provenance records back: every reader goes through `run.record.read_record`, so a
record with fields of the wrong type, JSON nested too deeply, terminal escapes, a camera's EXIF
text or a relative content path gives a one-line answer with its exit code in every command."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image
from test_report import make_result_folder

from clipstyler_opt.cli import cli
from clipstyler_opt.run.record import read_record, recorded_input, recorded_settings_hash

DEEP = "[" * 100_000 + "]" * 100_000  # deeper than Python's recursion limit


def invoke(*args: Any) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_line_error(result: Any, code: int) -> str:
    """The single stderr line of a failed command (asserting there is exactly one, no traceback)."""
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output and "internal error" not in result.output, lines
    return str(lines[0])


def blank_png(path: Path) -> Path:
    Image.new("RGB", (16, 12), (90, 60, 30)).save(path)
    return path


def good_record() -> dict[str, Any]:
    return {"tool": "clipstyler_opt", "prompt": "oil", "seed": 3, "settings": {"steps": 5},
            "input": {"source": "/photos/cat.png", "sha256": "ab" * 32, "size": [16, 12]},
            "backbones": [{"spec": "ViT-B-32-quickgelu/openai"}], "timings": {"total_s": 1.5},
            "losses": {"total": 2.0}, "history": [{"total": 3.0}, {"total": 2.0}], "warnings": ["w"],
            "skipped_steps": [], "versions": {"torch": "2"}, "output_size": [16, 12]}


WRONG_TYPES = [
    ("settings", [1, 2]),
    ("seed", "7"),
    ("backbones", {"spec": "x"}),
    ("timings", None),
    ("losses", "low"),
    ("history", 12),
    ("input", "cat.png"),
    ("warnings", "careful"),
    ("versions", ["torch"]),
    ("skipped_steps", {"1": 2}),
    ("output_size", "16x12"),
    ("history", [{"total": "3"}]),  # a list, but of the wrong items
]


@pytest.mark.parametrize("field, value", WRONG_TYPES)
def test_info_on_a_field_of_the_wrong_type_is_a_one_line_error(tmp_path: Path, field: str, value: Any) -> None:
    output = blank_png(tmp_path / "out.png")
    record = {**good_record(), field: value}
    (tmp_path / "out.png.json").write_text(json.dumps(record))
    line = one_line_error(invoke("info", output), 3)
    assert f"({field} should be " in line and "not a valid clipstyler_opt record" in line


def test_a_good_record_passes_the_type_check(tmp_path: Path) -> None:
    output = blank_png(tmp_path / "out.png")
    (tmp_path / "out.png.json").write_text(json.dumps(good_record()))
    result = invoke("info", output)
    assert result.exit_code == 0, result.output
    assert "seed: 3" in result.output.splitlines()


def test_info_shows_control_characters_escaped(tmp_path: Path) -> None:
    output = blank_png(tmp_path / "out.png")
    record = {**good_record(), "prompt": "oil\x1b]0;pwned\x07\x1b[2J", "warnings": ["a\rb"],
              "settings": {"steps\x1b[31m": 5}, "x\x1b[1m": "y\x9b31m", "created": "\x1bc"}
    (tmp_path / "out.png.json").write_text(json.dumps(record))
    result = invoke("info", output)
    assert result.exit_code == 0, result.output
    assert not [ch for ch in result.output if ch not in "\n" and not ch.isprintable()]
    lines = result.output.splitlines()
    assert "prompt: oil\\x1b]0;pwned\\x07\\x1b[2J" in lines and "warning: a\\rb" in lines
    assert "x\\x1b[1m: y\\x9b31m" in lines and "created: \\x1bc" in lines


def test_a_camera_jpeg_has_no_clipstyler_metadata_but_a_broken_record_is_invalid(tmp_path: Path) -> None:
    photo = tmp_path / "camera.jpg"
    exif = Image.Exif()
    exif[0x010E] = "OLYMPUS DIGITAL CAMERA"
    Image.new("RGB", (16, 12)).save(photo, exif=exif)
    assert "no clipstyler_opt metadata" in one_line_error(invoke("info", photo), 3)
    exif[0x010E] = '{"tool": "clipstyler_opt", "prompt": "oi'  # ours, cut short
    Image.new("RGB", (16, 12)).save(photo, exif=exif)
    assert "not valid JSON" in one_line_error(invoke("info", photo), 3)


def test_deeply_nested_json_is_a_one_line_error_in_info_and_eval(tmp_path: Path) -> None:
    output = blank_png(tmp_path / "out.png")
    (tmp_path / "out.png.json").write_text(DEEP)
    assert "nested too deeply" in one_line_error(invoke("info", output), 3)
    assert "nested too deeply" in one_line_error(invoke("eval", output), 3)
    assert recorded_settings_hash(output) is None  # a resume redoes the job
    (tmp_path / "out.png.json").write_text('{"seed": ' + "9" * 5000 + "}")  # more digits than Python converts
    assert "not a record" in one_line_error(invoke("info", output), 3)
    assert recorded_settings_hash(output) is None


def test_deeply_nested_json_in_a_result_folder_is_a_note_or_a_one_line_error(tmp_path: Path) -> None:
    root = make_result_folder(tmp_path)
    sidecar = next(root.rglob("*.png.json"))
    sidecar.write_text(DEEP)
    from clipstyler_opt.report.load import load_results

    results = load_results(root)
    assert any("nested too deeply" in note for note in results.notes)
    assert sidecar.with_suffix("") not in [o.image for o in results.outputs]
    (root / "eval.json").write_text(DEEP)
    line = one_line_error(invoke("report", root, "-o", tmp_path / "page.html"), 2)
    assert "eval.json" in line and "nested too deeply" in line
    with (root / "manifest.jsonl").open("a") as fh:  # manifest lines, too (after the cut last line)
        fh.write("\n" + DEEP + "\n" + '{"n": ' + "9" * 5000 + "}\n")
    (root / "eval.json").unlink()
    assert invoke("report", root, "-o", tmp_path / "page.html").exit_code == 0


def test_a_damaged_eval_json_does_not_block_study_make(tmp_path: Path) -> None:
    root = make_result_folder(tmp_path, lambdas=(50.0, 150.0), evaluation=False)
    (root / "eval.json").write_text('{"rows": [')
    result = invoke("study", "make", root, "--pairs", "2", "-o", tmp_path / "study.html")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "study.html").is_file()
    assert one_line_error(invoke("report", root, "-o", tmp_path / "page.html"), 2).endswith(
        "rewrite it with clipopt eval")


def test_a_truncated_tiff_content_image_is_a_one_line_error_in_report_and_study(tmp_path: Path) -> None:
    root = make_result_folder(tmp_path, lambdas=(50.0, 150.0), evaluation=False)
    content = tmp_path / "photos" / "red.png"
    tiff = content.with_suffix(".tif")
    Image.open(content).save(tiff)
    tiff.write_bytes(tiff.read_bytes()[: tiff.stat().st_size // 2])
    for path in [root / "manifest.jsonl", *root.rglob("*.json")]:
        path.write_text(path.read_text().replace(str(content), str(tiff)))
    line = one_line_error(invoke("report", root, "-o", tmp_path / "page.html"), 3)
    assert str(tiff) in line and "truncated" in line
    line = one_line_error(invoke("study", "make", root, "--pairs", "2", "-o", tmp_path / "s.html"), 3)
    assert str(tiff) in line and "truncated" in line
    assert not (tmp_path / "page.html").exists() and not (tmp_path / "s.html").exists()


# --- the content image of a record, found again ---

def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_relative_content_path_is_found_beside_the_output_only_with_its_sha256(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "made"
    folder.mkdir()
    blank_png(folder / "cat.png")
    record = {**good_record(), "input": {"source": "cat.png", "sha256": sha256(folder / "cat.png")}}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    Image.new("RGB", (16, 12), (1, 2, 3)).save(elsewhere / "cat.png")  # same name, another image
    monkeypatch.chdir(elsewhere)
    assert recorded_input(record, folder / "out.png") == folder / "cat.png"
    Image.new("RGB", (16, 12), (200, 2, 3)).save(folder / "cat.png")  # changed since: refused, never elsewhere's
    from clipstyler_opt.core.errors import InputImageError

    with pytest.raises(InputImageError, match=r"relative path.*has another sha256"):
        recorded_input(record, folder / "out.png")
    (folder / "cat.png").unlink()
    with pytest.raises(InputImageError, match="is not there"):
        recorded_input(record, folder / "out.png")
    assert recorded_input({"input": {"source": "/abs/cat.png"}}, folder / "out.png") == Path("/abs/cat.png")


def test_read_record_prefers_the_sidecar_and_checks_the_embedded_copy_too(tmp_path: Path) -> None:
    from clipstyler_opt.run.images import save_image

    output = tmp_path / "out.png"
    save_image(Image.new("RGB", (16, 12)), output, good_record())
    record, where = read_record(output)
    assert where.startswith("sidecar") and record["input"]["source"] == "/photos/cat.png"
    (tmp_path / "out.png.json").unlink()
    record, where = read_record(output)
    assert where.startswith("PNG iTXt") and record["input"]["source"] == "cat.png"  # names only inside


def test_eval_of_a_copied_folder_with_relative_paths(tmp_path: Path) -> None:
    """An old sidecar with a relative content path: eval from another folder never reads a file of
    that name in the current folder."""
    root = make_result_folder(tmp_path)
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)
    output = next(p for p in moved.rglob("*.png") if (p.parent / (p.name + ".json")).is_file())
    sidecar = output.with_name(output.name + ".json")
    record = json.loads(sidecar.read_text())
    record["input"]["source"] = "nowhere.png"
    sidecar.write_text(json.dumps(record))
    line = one_line_error(invoke("eval", output), 3)
    assert "nowhere.png" in line and "relative path" in line


def test_run_from_finds_a_relative_content_image_beside_the_output_only(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from clipstyler_opt.core.errors import InputImageError
    from clipstyler_opt.run.rerun import rerun_from_record

    folder, elsewhere = tmp_path / "made", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    blank_png(folder / "cat.png")
    Image.new("RGB", (16, 12), (1, 2, 3)).save(elsewhere / "cat.png")
    record = {"prompt": "oil", "config": {}, "input": {"source": "cat.png", "sha256": sha256(folder / "cat.png")}}
    monkeypatch.chdir(elsewhere)
    assert rerun_from_record(record, folder / "out.png").image == folder / "cat.png"
    (folder / "cat.png").unlink()
    with pytest.raises(InputImageError, match=r"relative path, and .* is not there; give IMAGE$"):
        rerun_from_record(record, folder / "out.png")


def test_a_fifo_or_folder_at_the_sidecar_is_named_not_silently_passed_over(tmp_path: Path) -> None:
    import os

    image = blank_png(tmp_path / "out.png")
    os.mkfifo(tmp_path / "out.png.json")
    with pytest.raises(Exception, match=r"out\.png\.json: is a FIFO") as caught:
        read_record(image)  # returns at once: the FIFO is never opened
    assert "embedded in out.png" in str(caught.value)
    os.unlink(tmp_path / "out.png.json")
    (tmp_path / "out.png.json").mkdir()
    with pytest.raises(Exception, match=r"is a folder|is a directory"):
        read_record(image)
