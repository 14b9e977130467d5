"""The HTML report: reading a result folder, cells, escaping, embedding, the CLI (figures and tables:
test_report_figures.py)."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from clipstyler_opt.cli import cli
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.report import load_results, write_report
from clipstyler_opt.report.markup import clean_text, escape

ODD_PROMPT = 'starry <b>night</b> & "stars"\nsecond line'
PLAIN_PROMPT = "ukiyo-e woodblock print"
DIRECTIONS = {"clip_score": "higher", "directional_similarity": "higher", "patch_clip_score": "higher",
              "ssim": "higher", "vgg_content_distance": "lower", "lpips": "lower", "edge_correlation": "higher",
              "gram_distance": "lower"}


def write_png(path: Path, size: tuple[int, int], seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def make_result_folder(base: Path, *, prompts: Sequence[str] = (ODD_PROMPT, PLAIN_PROMPT),
                       contents: Sequence[str] = ("red.png", "blue.png"), lambdas: Sequence[float] = (300.0, 50.0),
                       history: bool = True, sweep: bool = False, evaluation: bool = True) -> Path:
    """A folder as `clipopt batch` writes it: content images outside it, outputs per prompt and cell
    (cells differ in lambda_content only), sidecars, a manifest with noise, and an eval.json whose
    SSIM of an output is 0.5 + 0.1·(content index) + lambda/1000 and directional similarity
    0.3 − lambda/1000 (so cell means are known by hand)."""
    photos, root = base / "photos", base / "results"
    root.mkdir(parents=True)
    lines: list[dict[str, Any]] = []
    rows = []
    for c, name in enumerate(contents):
        write_png(photos / name, (48, 32), seed=c)
        for p, prompt in enumerate(prompts):
            for lam in lambdas:
                relative = f"prompt-{p}/lam-{lam:g}/{name}"
                output = root / relative
                write_png(output, (48, 32), seed=100 + 10 * c + p + int(lam))
                settings = {"steps": 3, "lambda_content": lam, "lambda_tv": 0.002, "size": 48}
                sidecar: dict[str, Any] = {
                    "prompt": prompt, "seed": 7 + c, "settings": settings, "settings_hash": f"h{c}{p}{lam:g}",
                    "input": {"source": str(photos / name), "sha256": "0" * 64, "size": [48, 32]},
                    "losses": {"total": 10.0 + lam / 100, "content": 1.0, "dir": 0.5},
                    "backbone": {"name": "tiny"}}
                if history:
                    sidecar["history"] = [{"total": 30.0 - 10 * i + lam / 100, "content": 3.0 - i, "dir": 0.5}
                                          for i in range(3)]
                if sweep:
                    sidecar["sweep"] = {"cell": f"c{int(lam)}", "values": {"lambda_content": lam}}
                output.with_name(output.name + ".json").write_text(json.dumps(sidecar))
                lines.append({"record": "job", "status": "done", "input": str(photos / name), "relative": name,
                              "prompt": prompt, "output": relative, "seed": 7 + c, "settings_hash": "x"})
                rows.append({"output": relative, "content": str(photos / name), "prompt": prompt, "metrics": {
                    "clip_score": 0.25, "directional_similarity": 0.3 - lam / 1000,
                    "patch_clip_score": 0.2, "ssim": 0.5 + 0.1 * c + lam / 1000, "vgg_content_distance": 1.0,
                    "lpips": None, "edge_correlation": 0.9, "gram_distance": None}})
    lines.insert(0, {"record": "job", "status": "failed", "input": str(photos / "gone.png"), "relative": "gone.png",
                     "prompt": prompts[0], "output": "prompt-0/gone.png", "seed": 1, "error": "unreadable"})
    lines.append({"record": "job", "status": "done", "input": str(photos / "x.png"), "relative": "x.png",
                  "prompt": prompts[0], "output": "prompt-0/deleted.png", "seed": 1, "settings_hash": "y"})
    lines.append({"record": "summary", "jobs": len(rows), "done": len(rows)})
    text = "".join(json.dumps(line) + "\n" for line in lines) + '{"record": "job", "sta'  # a cut last line
    (root / "manifest.jsonl").write_text(text)
    if evaluation:
        (root / "eval.json").write_text(json.dumps({"scorer": {"model": "tiny"}, "rows": rows, "summary": {},
                                                    "directions": DIRECTIONS}))
    return root


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {key: value or "" for key, value in attrs}))


def tags(page: str, name: str) -> list[dict[str, str]]:
    parser = _Tags()
    parser.feed(page)
    return [attrs for tag, attrs in parser.tags if tag == name]


def picture_sources(page: str) -> list[str]:
    """The <img src> of the pictures (outputs and contents), not of the charts."""
    return [attrs["src"] for attrs in tags(page, "img") if "chart" not in attrs.get("class", "")]


# --- reading a folder ---

def test_cells_are_inferred_from_differing_settings_and_sorted_numerically(tmp_path: Path) -> None:
    results = load_results(make_result_folder(tmp_path))
    assert [cell.label for cell in results.cells] == ["lambda_content=50", "lambda_content=300"]
    assert len(results.outputs) == 2 * 2 * 2
    assert results.prompts == [ODD_PROMPT, PLAIN_PROMPT]
    assert len(results.groups()) == 4 and all(len(g) == 2 for g in results.groups().values())
    assert any("deleted.png" in note and "missing" in note for note in results.notes)
    assert not any("gone.png" in note for note in results.notes)  # a failed job is not an output


def test_sweep_cells_are_taken_from_the_sidecar(tmp_path: Path) -> None:
    results = load_results(make_result_folder(tmp_path, sweep=True, prompts=(PLAIN_PROMPT,), history=False))
    assert [(c.id, c.values) for c in results.cells] == [("c50", (("lambda_content", 50.0),)),
                                                         ("c300", (("lambda_content", 300.0),))]
    page = write_report(results.root).read_text(encoding="utf-8")
    assert re.search(r'<th scope="col"[^>]*><b>c50</b><br>lambda_content=50</th>', page)


def test_a_single_setting_gives_one_default_cell_and_history_may_be_absent(tmp_path: Path) -> None:
    results = load_results(make_result_folder(tmp_path, lambdas=(150.0,), history=False))
    assert [c.id for c in results.cells] == ["default"]
    assert all(o.history == () for o in results.outputs)


def test_the_latest_manifest_record_of_an_output_wins(tmp_path: Path) -> None:
    root = make_result_folder(tmp_path, prompts=(PLAIN_PROMPT,), contents=("red.png",))
    record = {"record": "job", "status": "skipped", "input": "/elsewhere/red.png", "relative": "red.png",
              "prompt": PLAIN_PROMPT, "output": "prompt-0/lam-50/red.png", "seed": 7}
    with open(root / "manifest.jsonl", "a") as fh:
        fh.write("\n" + json.dumps(record) + "\n")
    by_output = {o.relative: o for o in load_results(root).outputs}
    assert by_output["prompt-0/lam-50/red.png"].content == Path("/elsewhere/red.png")
    assert by_output["prompt-0/lam-300/red.png"].content == tmp_path / "photos" / "red.png"


@pytest.mark.parametrize("damage, message", [
    (lambda root: (root / "manifest.jsonl").unlink(), "no manifest.jsonl"),
    (lambda root: (root / "manifest.jsonl").write_text('{"record": "summary"}\n'), "no finished output"),
    (lambda root: (root / "eval.json").write_text("{not json"), "eval.json"),
    (lambda root: (root / "eval.json").write_text('{"rows": [{"metrics": {}}]}'), "eval.json"),
])
def test_unusable_folders_are_one_line_errors(tmp_path: Path, damage: Any, message: str) -> None:
    root = make_result_folder(tmp_path)
    damage(root)
    with pytest.raises(ConfigError, match=message) as caught:
        load_results(root)
    assert "\n" not in str(caught.value)


# --- text ---

def test_text_is_escaped_and_undecodable_bytes_become_valid_unicode() -> None:
    assert escape('<a href="x">&</a>') == "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
    assert clean_text(os.fsdecode("café".encode())) == "café"  # surrogate-escaped valid UTF-8 decodes
    assert clean_text(os.fsdecode(b"caf\xe9")) == "caf\ufffd"  # Latin-1 bytes are not UTF-8
    assert clean_text("a\ud800b") == "a\ufffdb"


# --- the page ---

@pytest.fixture(scope="module")
def default_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the default folder, written once for the tests that only read it."""
    return write_report(make_result_folder(tmp_path_factory.mktemp("default")))


def test_report_grid_references_every_image_relatively(default_report: Path) -> None:
    root, path = default_report.parent, default_report
    assert path.name == "report.html"
    page = path.read_text(encoding="utf-8")
    sources = picture_sources(page)
    assert len(sources) == 8 + 2 * 2  # the outputs, and each content image once per prompt
    for src in sources:
        assert not src.startswith(("data:", "/", "file:")), src
        assert (root / os.fsdecode(unquote_to_bytes(src))).resolve().is_file(), src
    headers = re.findall(r'<th scope="col"[^>]*>(.*?)</th>', page)
    assert headers[:3] == ["content", "lambda_content=50", "lambda_content=300"]
    first_row = re.search(r"<tbody><tr>(.*?)</tr>", page).group(1)
    assert 'class="content"' in first_row.split("<td>")[0]  # the content image comes first


def test_report_escapes_prompts_and_keeps_no_raw_markup(default_report: Path) -> None:
    page = default_report.read_text(encoding="utf-8")
    assert "<b>night</b>" not in page
    assert "starry &lt;b&gt;night&lt;/b&gt; &amp; &quot;stars&quot;" in page


def test_report_embeds_images_as_data_uris(tmp_path: Path) -> None:
    root = make_result_folder(tmp_path, prompts=(PLAIN_PROMPT,))
    out = tmp_path / "mail" / "page.html"
    write_report(root, out, embed=True)
    page = out.read_text(encoding="utf-8")
    sources = picture_sources(page)
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)
    files = {p.read_bytes() for p in root.rglob("*.png")} | {p.read_bytes() for p in (tmp_path / "photos").iterdir()}
    assert all(base64.b64decode(src.split(",", 1)[1]) in files for src in sources)


def test_report_metrics_table_means_and_unavailable(default_report: Path) -> None:
    page = default_report.read_text(encoding="utf-8")
    # SSIM is 0.5 + 0.1·(content index) + lambda/1000: the lambda=50 cell averages 0.55 and 0.65 = 0.6
    table = page.split('<table class="metrics">')[1].split("</table>")[0]
    row_50 = re.search(r"<tr><td>ukiyo-e woodblock print</td><td>lambda_content=50</td>(.*?)</tr>", table).group(1)
    cells = [re.sub(r"<span.*?</span>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row_50)]
    headers = re.findall(r"<th>(.*?)</th>", table.split("</thead>")[0])
    values = dict(zip(headers[2:], cells, strict=True))
    assert values["lambda_content"] == "50" and values["n"] == "2"
    assert float(values["ssim ↑"]) == pytest.approx(0.6)
    assert float(values["directional_similarity ↑"]) == pytest.approx(0.25)
    assert values["lpips ↓"] == "unavailable" and values["gram_distance ↓"] == "unavailable"


def test_report_without_metrics_or_history_says_how_to_get_them(tmp_path: Path) -> None:
    root = make_result_folder(tmp_path, history=False, evaluation=False)
    page = write_report(root).read_text(encoding="utf-8")
    assert "clipopt eval" in page and "No per-step loss history" in page and 'class="chart"' not in page
    assert "No analysis yet" in page


def rename_to_undecodable(root: Path, relative: str) -> str:
    """Rename an output (and its sidecar) to a name whose bytes are not UTF-8 (b"caf\\xff.png"),
    as the manifest would then record it; returns the new relative path."""
    source = root / relative
    odd = os.fsdecode(b"caf\xff.png")
    source.rename(source.with_name(odd))
    source.with_name(source.name + ".json").rename(source.with_name(odd + ".json"))
    renamed = relative.rsplit("/", 1)[0] + "/caf\\udcff.png"
    (root / "manifest.jsonl").write_text((root / "manifest.jsonl").read_text().replace(relative, renamed))
    return renamed


def test_undecodable_file_names_are_percent_encoded_from_their_bytes(tmp_path: Path) -> None:
    root = make_result_folder(tmp_path, prompts=(PLAIN_PROMPT,), contents=("a.png",), evaluation=False)
    rename_to_undecodable(root, "prompt-0/lam-50/a.png")
    page = write_report(root).read_bytes().decode("utf-8")  # strict: no lone surrogate reached the file
    assert 'src="prompt-0/lam-50/caf%FF.png"' in page


def test_report_cli_writes_elsewhere_and_fails_in_one_line(tmp_path: Path) -> None:
    root = make_result_folder(tmp_path, prompts=(PLAIN_PROMPT,), history=False)
    out = tmp_path / "other" / "r.html"
    result = CliRunner().invoke(cli, ["report", str(root), "-o", str(out)])
    assert result.exit_code == 0, result.output
    src = picture_sources(out.read_text(encoding="utf-8"))[0]
    assert src.startswith("../") and (out.parent / src).resolve().is_file()
    (root / "eval.json").write_text("[")
    result = CliRunner().invoke(cli, ["report", str(root)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("error: ")
    assert not (root / "report.html").exists()  # nothing half-written


def test_report_never_writes_over_what_it_reads(tmp_path: Path) -> None:
    root = make_result_folder(tmp_path)
    manifest = (root / "manifest.jsonl").read_bytes()
    result = CliRunner().invoke(cli, ["report", str(root), "-o", str(root / "manifest.jsonl")])
    assert result.exit_code == 2 and "refusing to overwrite" in result.output
    assert (root / "manifest.jsonl").read_bytes() == manifest
