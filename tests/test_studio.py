"""`clipopt studio` against one real server subprocess with the tiny models.

The REST API: a run with previews and its embedded record, "copy as command" giving the same
settings hash, the 4xx cases (settings naming server files, bad values with the CLI's message,
refused uploads), cancel with a partial image, names that never replace a file, two clients at
once. The page in headless Chromium: it loads without console errors or outside requests at
desktop and phone size; an upload with a two-style prompt runs with a changing preview to a
before/after view and a download carrying the record; a run cancelled midway keeps its partial
image; a bad style spec shows its message. Last, SIGTERM: exit 130, the partial image kept, no
temporary file, no process left.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("gradio")

import tiny  # noqa: E402
from browser import launched_browser, watch  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from PIL import Image  # noqa: E402
from studio_server import StudioProcess, running_studio  # noqa: E402

from clipstyler_opt.cli import cli  # noqa: E402
from clipstyler_opt.core.styles import StyleSpec  # noqa: E402

TINY = {"size": 64, "crops": 4, "crop_size": 32}
MAX_UPLOAD_MB = 1


@pytest.fixture(scope="module")
def server(tiny_paths: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioProcess]:
    scorer = f"{tiny.TINY_CLIP_NAME}/openai:file={tiny_paths['clip_checkpoint']}"
    with running_studio(tiny_paths, tmp_path_factory.mktemp("studio"), "--max-upload-mb", str(MAX_UPLOAD_MB),
                        "--scorer", scorer) as s:
        yield s


def png_bytes(size: tuple[int, int] = (48, 40), seed: int = 0) -> bytes:
    import numpy as np

    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def submit(server: StudioProcess, settings: dict[str, Any], image: bytes | None = None, name: str = "cat.png",
           styles: list[tuple[str, bytes]] = ()) -> httpx.Response:  # type: ignore[assignment]
    files = [("image", (name, png_bytes() if image is None else image, "image/png"))]
    files += [("style_image", (n, data, "image/png")) for n, data in styles]
    return httpx.post(f"{server.url}/api/jobs", files=files, data={"settings": json.dumps(settings)}, timeout=30)


def wait_for(server: StudioProcess, job_id: str, test: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = httpx.get(f"{server.url}/api/jobs/{job_id}", timeout=10).json()
        if test(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def finished(status: dict[str, Any]) -> bool:
    return status["status"] in ("done", "failed", "cancelled")


def embedded_record(png: bytes) -> dict[str, Any]:
    """The record read straight from the PNG's iTXt chunk (not with the package's reader)."""
    return json.loads(Image.open(io.BytesIO(png)).text["clipstyler_opt"])


def test_a_run_shows_previews_and_its_result_carries_the_record(server: StudioProcess) -> None:
    backbones = httpx.get(f"{server.url}/api/backbones").json()
    assert backbones[0]["default"] and backbones[0]["name"] == "clipopt-tiny-test/openai"
    settings = {"prompt": "oil painting:0.7 | ink sketch:0.3", "steps": 6, "seed": 3, "preview_every": 2, **TINY}
    created = submit(server, settings)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    seen_previews = set()

    def note(status: dict[str, Any]) -> bool:
        if status["preview"]:
            seen_previews.add(status["preview_step"])
        return finished(status)

    status = wait_for(server, job_id, note)
    assert status["status"] == "done", status
    assert status["step"] == status["total"] == 6 and set(status["losses"]) >= {"total", "patch", "dir"}
    assert status["preview_step"] == 6 and seen_previews <= {2, 4, 6}
    preview = httpx.get(server.url + status["preview"])
    working = (64, round(40 * 64 / 48))  # the upload is 48x40; previews are at the working size, long side 64
    assert preview.headers["content-type"] == "image/png" and Image.open(io.BytesIO(preview.content)).size == working
    result = httpx.get(f"{server.url}/api/jobs/{job_id}/result")
    assert result.status_code == 200 and result.content[:8] == b"\x89PNG\r\n\x1a\n"
    record = embedded_record(result.content)
    assert record["prompt"] == settings["prompt"] and record["seed"] == 3
    assert record["config"]["steps"] == 6 and record["config"]["size"] == 64
    assert (server.output_dir / status["output"]).read_bytes() == result.content
    sidecar = httpx.get(f"{server.url}/api/jobs/{job_id}/sidecar").json()
    assert sidecar["settings_hash"] == record["settings_hash"]
    # the upload is kept byte for byte under a generated name, and it is what the record names
    kept = list((server.output_dir / "inputs").glob(f"cat-{job_id[:8]}.png"))
    assert len(kept) == 1 and record["input"]["sha256"] == hashlib.sha256(kept[0].read_bytes()).hexdigest()


def test_copy_as_command_makes_the_same_settings(server: StudioProcess, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    created = submit(server, {"prompt": "ink:2 | fog:-1", "steps": 2, "keep_colors": True, **TINY})
    status = wait_for(server, created.json()["id"], finished)
    command = httpx.get(f"{server.url}/api/jobs/{status['id']}/command").json()["command"]
    import shlex

    words = shlex.split(command)
    assert words[:2] == ["clipopt", "run"] and "--keep-colors" in words
    monkeypatch.chdir(tmp_path)
    outcome = CliRunner().invoke(cli, [*words[1:], "-o", str(tmp_path / "again.png"), "-q"], catch_exceptions=False)
    assert outcome.exit_code == 0, outcome.output
    studio_png = httpx.get(f"{server.url}/api/jobs/{status['id']}/result").content
    again = embedded_record((tmp_path / "again.png").read_bytes())
    assert again["settings_hash"] == embedded_record(studio_png)["settings_hash"]


def test_score_it_gives_the_metrics_of_clipopt_eval(server: StudioProcess, tiny_paths: dict[str, Path],
                                                   tmp_path: Path) -> None:
    job_id = submit(server, {"prompt": "oil", "steps": 2, **TINY}, name="fox.png").json()["id"]
    assert httpx.post(f"{server.url}/api/jobs/nope/score").status_code == 404
    done = wait_for(server, job_id, finished)
    task = httpx.post(f"{server.url}/api/jobs/{job_id}/score")
    assert task.status_code == 202, task.text
    assert wait_for(server, task.json()["id"], finished)["status"] == "done"
    scores = httpx.get(f"{server.url}/api/jobs/{job_id}").json()["scores"]
    report = tmp_path / "eval.json"
    args = ["eval", str(server.output_dir / done["output"]), "--scorer",
            f"{tiny.TINY_CLIP_NAME}/openai:file={tiny_paths['clip_checkpoint']}", "--clip-model-config",
            str(tiny_paths["clip_model_config"]), "--vgg-checkpoint", str(tiny_paths["vgg_checkpoint"]),
            "--device", "cpu", "--json", str(report), "-q"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    expected = json.loads(report.read_text())["rows"][0]["metrics"]
    assert scores["metrics"].keys() == expected.keys()
    for name, value in expected.items():
        assert scores["metrics"][name] == pytest.approx(value, rel=1e-5, abs=1e-7) if value is not None \
            else scores["metrics"][name] is None, name


def test_add_to_an_experiment_plan(server: StudioProcess) -> None:
    import tomllib

    ids = [submit(server, {"prompt": "oil", "steps": steps, "seed": 4, **TINY}, name="plan.png").json()["id"]
           for steps in (1, 2)]
    for job_id in ids:
        wait_for(server, job_id, finished)
        response = httpx.post(f"{server.url}/api/jobs/{job_id}/plan")
        assert response.status_code == 200 and response.json()["plan"] == "studio-plan.toml"
    plan = tomllib.loads((server.output_dir / "studio-plan.toml").read_text())
    assert plan["prompts"]["text"] == ["oil"] and plan["replicates"]["seeds"] == [4]
    assert len(plan["content"]["images"]) == 2
    assert all((server.output_dir / image).is_file() for image in plan["content"]["images"])
    assert plan["grid"]["steps"] == [1, 2] and plan["grid"]["size"] == [64]
    assert list(plan["backbones"]) == ["clipopt-tiny-test-openai"]


def cli_message(args: list[str]) -> str:
    """The one-line message `clipopt run` gives for these options (without 'error: ')."""
    outcome = CliRunner().invoke(cli, ["run", "examples/chelsea.png", *args])
    assert outcome.exit_code == 2
    return outcome.output.strip().splitlines()[-1].removeprefix("error: ")


@pytest.mark.parametrize(("settings", "words"), [
    ({"vgg_checkpoint": "/etc/passwd"}, "vgg_checkpoint names a file on the server"),
    ({"clip_checkpoint": "x.safetensors"}, "names a file on the server"),
    ({"style_image": ["/etc/hosts"]}, "style_image names a file on the server"),
    ({"animation": "/tmp/x.gif"}, "animation names a file on the server"),
    ({"cache_dir": "/"}, "cache_dir names a file on the server"),
    ({"clip_model_config": ["/x.json"]}, "names a file on the server"),
    ({"device": "cuda"}, "device is fixed when the studio starts"),
    ({"backbone": "ViT-B-32-quickgelu/openai:file=/etc/passwd"}, "is not offered here"),
    ({"stepz": 3}, "unknown setting 'stepz' (did you mean 'steps'?)"),
    ({"steps": "many"}, "steps must be an integer"),
])
def test_refused_settings_get_400_and_nothing_is_kept(server: StudioProcess, settings: dict[str, Any],
                                                        words: str) -> None:
    before = sorted(server.output_dir.rglob("*"))
    response = submit(server, {"prompt": "oil", **settings})
    assert response.status_code == 400 and words in response.json()["error"], response.text
    assert sorted(server.output_dir.rglob("*")) == before


@pytest.mark.parametrize(("settings", "cli_args"), [
    ({"prompt": "oil:abc"}, ["oil:abc"]),
    ({"prompt": "oil | "}, ["oil | "]),
    ({"prompt": "oil", "style_strength": 2}, ["oil", "--style-strength", "2"]),
    ({"prompt": "oil", "steps": 0}, ["oil", "--steps", "0"]),
    ({"prompt": "oil", "lambda_tv": -1}, ["oil", "--lambda-tv", "-1"]),
])
def test_bad_settings_get_the_clis_one_line_message(server: StudioProcess, settings: dict[str, Any],
                                                     cli_args: list[str]) -> None:
    response = submit(server, settings)
    assert response.status_code == 400
    message = response.json()["error"]
    assert "\n" not in message and message.split(": ", 1)[-1] in cli_message(cli_args)


def truncated_png() -> bytes:
    return png_bytes((64, 64), seed=1)[:300]


def bomb_png() -> bytes:
    """A valid PNG header declaring 100000 x 100000 pixels, with one tiny compressed row."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = (100_000).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


@pytest.mark.parametrize(("data", "status", "words"), [
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", 400, "not an image in an accepted format"),
    (truncated_png(), 400, "truncated"),
    (bomb_png(), 400, "decompression bomb"),
    (b"", 400, "empty"),
    (png_bytes((700, 700), seed=2), 413, "--max-upload-mb"),
], ids=["postscript", "truncated", "bomb", "empty", "too-large"])
def test_refused_uploads(server: StudioProcess, data: bytes, status: int, words: str) -> None:
    assert len(png_bytes((700, 700), seed=2)) > MAX_UPLOAD_MB * 2**20
    before = sorted(server.output_dir.rglob("*"))
    response = submit(server, {"prompt": "oil", **TINY}, image=data, name="../../x.png")
    assert response.status_code == status and words in response.json()["error"], response.text
    style = submit(server, {"prompt": "oil", **TINY}, styles=[("s.eps", data)])
    assert style.status_code == status
    assert sorted(server.output_dir.rglob("*")) == before


def test_other_4xx(server: StudioProcess) -> None:
    assert httpx.get(f"{server.url}/api/jobs/nope").status_code == 404
    assert httpx.delete(f"{server.url}/api/jobs/nope").status_code == 404
    no_image = httpx.post(f"{server.url}/api/jobs", data={"settings": json.dumps({"prompt": "oil"})},
                          files={"other": ("a", b"x")})
    assert no_image.status_code == 400 and "'image'" in no_image.json()["error"]
    bad_json = httpx.post(f"{server.url}/api/jobs", data={"settings": "{oil"}, files={"image": ("a.png", png_bytes())})
    assert bad_json.status_code == 400 and "not JSON" in bad_json.json()["error"]
    foreign = httpx.post(f"{server.url}/api/jobs", headers={"Origin": "https://example.com"},
                         data={"settings": "{}"}, files={"image": ("a.png", png_bytes())})
    assert foreign.status_code == 403
    rebound = httpx.get(f"{server.url}/api/backbones", headers={"Host": "attacker.example:80"})
    assert rebound.status_code == 421


def test_cancel_keeps_the_partial_image_and_names_never_replace_files(server: StudioProcess) -> None:
    taken = server.output_dir / "dog-oil.png"
    taken.parent.mkdir(parents=True, exist_ok=True)
    taken.write_bytes(b"someone's file")
    long_run = submit(server, {"prompt": "oil", "steps": 5000, "preview_every": 1, **TINY}, name="dog.png").json()["id"]
    short = submit(server, {"prompt": "oil", "steps": 1, **TINY}, name="dog.png").json()["id"]
    queued = httpx.get(f"{server.url}/api/jobs/{short}").json()
    assert queued["status"] == "queued" and queued["queue_position"] >= 1
    assert httpx.get(f"{server.url}/api/jobs/{short}/result").status_code == 409
    status = wait_for(server, long_run, lambda s: s["step"] >= 3 or finished(s))
    assert status["status"] == "running"
    assert httpx.delete(f"{server.url}/api/jobs/{long_run}").status_code == 200
    status = wait_for(server, long_run, finished)
    assert status["status"] == "cancelled" and status["partial"] and 3 <= status["step"] < 5000
    partial = httpx.get(f"{server.url}/api/jobs/{long_run}/result").content
    assert embedded_record(partial)["interrupted_at_step"] == status["step"]
    assert status["output"] == "dog-oil.partial.png" and (server.output_dir / status["output"]).is_file()
    done = wait_for(server, short, finished)
    assert done["status"] == "done" and done["output"] == "dog-oil-2.png"
    assert taken.read_bytes() == b"someone's file"


def test_two_clients_at_once_lose_no_job(server: StudioProcess) -> None:
    ids: list[str] = []

    def client(seed: int) -> None:
        with httpx.Client(base_url=server.url) as session:
            for n in range(2):
                files = {"image": (f"c{seed}.png", png_bytes(seed=seed + n))}
                settings = {"prompt": f"style {seed}", "steps": 1, "seed": n, **TINY}
                ids.append(session.post("/api/jobs", files=files, data={"settings": json.dumps(settings)}).json()["id"])

    threads = [threading.Thread(target=client, args=(seed,)) for seed in (10, 20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 4
    listed = {job["id"] for job in httpx.get(f"{server.url}/api/jobs").json()}
    assert set(ids) <= listed
    outputs = {wait_for(server, job_id, finished)["output"] for job_id in ids}
    assert len(outputs) == 4 and all((server.output_dir / name).is_file() for name in outputs)



# --- the page ---

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "chelsea.png"
TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_browser() as launched:
        yield launched


def open_page(browser: Any, server: StudioProcess, width: int = 1280, height: int = 900) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    page = context.new_page()
    problems = watch(page)
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url) if not request.url.startswith(server.url)
            and not request.url.startswith(("data:", "blob:")) else None)
    page.goto(server.url + "/")
    page.wait_for_selector("#studio-start", timeout=TIMEOUT_MS)
    return page, problems, outside


def field(page: Any, elem_id: str) -> Any:
    return page.locator(f"#{elem_id} textarea, #{elem_id} input:not([type=range])").first


def status(page: Any) -> str:
    return str(page.locator("#studio-status").inner_text())


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)], ids=["desktop", "phone"])
def test_the_page_loads_offline_without_console_errors(browser: Any, server: StudioProcess, width: int,
                                                       height: int) -> None:
    page, problems, outside = open_page(browser, server, width, height)
    page.wait_for_timeout(1500)  # a few polls of the queue
    assert not problems, problems
    assert outside == []  # no web fonts, no CDN: everything from the studio itself
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.context.close()


def test_upload_two_styles_preview_finish_download(browser: Any, server: StudioProcess, tmp_path: Path) -> None:
    page, problems, _ = open_page(browser, server)
    page.set_input_files("#studio-upload input[type=file]", str(EXAMPLE))
    page.wait_for_selector("#studio-content img", timeout=TIMEOUT_MS)
    field(page, "studio-style-text-0").fill("oil painting")
    field(page, "studio-style-text-1").fill("ink sketch")
    weight = field(page, "studio-style-weight-1")
    weight.fill("0.3")
    weight.press("Enter")
    expected = str(StyleSpec.parse("oil painting | ink sketch:0.3"))
    page.wait_for_function(f"document.querySelector('#studio-spec textarea').value === {json.dumps(expected)}",
                           timeout=TIMEOUT_MS)
    field(page, "studio-steps").fill("16")
    field(page, "studio-size").fill("64")
    field(page, "studio-preview-every").fill("2")
    field(page, "studio-extra").fill(json.dumps({"crops": 4, "crop_size": 32}))
    page.click("#studio-start")
    previews: set[str] = set()
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while "done" not in status(page) and time.monotonic() < deadline:
        source = page.locator("#studio-preview-img").get_attribute("src") if page.locator(
            "#studio-preview-img").count() else None
        if source:
            previews.add(source)
        page.wait_for_timeout(100)
    assert "done" in status(page) and "step 16/16" in status(page), status(page)
    assert len(previews) >= 2, previews  # the preview changed while it ran
    page.wait_for_selector("#studio-before-after img", timeout=TIMEOUT_MS)
    assert page.locator("#studio-before-after img").count() == 2
    with page.expect_download() as caught:
        page.click("#studio-download-png")
    saved = tmp_path / caught.value.suggested_filename
    caught.value.save_as(saved)
    record = json.loads(Image.open(saved).text["clipstyler_opt"])
    assert record["prompt"] == expected and record["config"]["steps"] == 16
    assert saved.read_bytes() == (server.output_dir / saved.name).read_bytes()
    command = field(page, "studio-command").input_value()
    assert command.startswith("clipopt run ") and "--steps 16" in command
    assert page.locator("#studio-history img").count() >= 1
    assert not problems, problems
    page.context.close()


def test_cancel_midway_keeps_the_partial_image(browser: Any, server: StudioProcess) -> None:
    page, problems, _ = open_page(browser, server)
    page.set_input_files("#studio-upload input[type=file]", str(EXAMPLE))
    field(page, "studio-spec").fill("ukiyo-e woodblock print")
    field(page, "studio-steps").fill("5000")
    field(page, "studio-size").fill("64")
    field(page, "studio-extra").fill(json.dumps({"crops": 4, "crop_size": 32}))
    page.click("#studio-start")
    page.wait_for_function("/step ([3-9]|\\d\\d+)\\//.test(document.querySelector('#studio-status').innerText)",
                           timeout=TIMEOUT_MS)
    page.click("#studio-cancel")
    page.wait_for_function("document.querySelector('#studio-status').innerText.includes('cancelled')",
                           timeout=TIMEOUT_MS)
    step = int(re.search(r"step (\d+)/5000", status(page)).group(1))  # type: ignore[union-attr]
    assert 3 <= step < 5000
    link = page.locator("#studio-download-png")
    link.wait_for(timeout=TIMEOUT_MS)
    name = link.get_attribute("download")
    assert name is not None and ".partial" in name
    record = json.loads(Image.open(server.output_dir / name).text["clipstyler_opt"])
    assert record["interrupted_at_step"] == step
    assert not problems, problems
    page.context.close()


def test_a_refused_upload_shows_its_message(browser: Any, server: StudioProcess, tmp_path: Path) -> None:
    forged = tmp_path / "photo.png"  # PostScript under an image's name
    forged.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    page, problems, _ = open_page(browser, server)
    page.set_input_files("#studio-upload input[type=file]", str(forged))
    page.wait_for_function("document.querySelector('#studio-image-message').innerText"
                           ".includes('not an image in an accepted format')", timeout=TIMEOUT_MS)
    assert page.locator("#studio-content img").count() == 0
    assert not problems, problems
    page.context.close()


def test_a_bad_style_spec_shows_its_message(browser: Any, server: StudioProcess) -> None:
    page, problems, _ = open_page(browser, server)
    before = sorted(server.output_dir.rglob("*"))
    field(page, "studio-spec").fill("oil:abc")
    message = "weight 'abc' is not a number"
    page.wait_for_function(f"document.querySelector('#studio-spec-message').innerText.includes({message!r})",
                           timeout=TIMEOUT_MS)
    page.click("#studio-start")  # starting anyway: the same message, and no job
    page.wait_for_function(f"document.querySelector('#studio-start-message').innerText.includes({message!r})",
                           timeout=TIMEOUT_MS)
    page.wait_for_timeout(500)
    assert sorted(server.output_dir.rglob("*")) == before  # no job, no upload kept
    assert not problems, problems
    page.context.close()


# --- last: it stops the module's server ---

def test_sigterm_saves_the_partial_image_and_exits_130_cleanly(server: StudioProcess) -> None:
    """Last: it stops the module's server."""
    job_id = submit(server, {"prompt": "ink", "steps": 5000, **TINY}, name="owl.png").json()["id"]
    wait_for(server, job_id, lambda s: s["step"] >= 2)
    assert server.stop(signal.SIGTERM) == 130
    assert any("interrupted; the latest image is" in line and "owl-ink.partial.png" in line for line in server.lines)
    partial = server.output_dir / "owl-ink.partial.png"
    assert embedded_record(partial.read_bytes())["interrupted_at_step"] >= 2
    assert list(server.temp_dir.iterdir()) == []  # the page's upload folder is gone
    assert not [p for p in server.output_dir.rglob("*") if p.name.startswith(".clipopt-")]
    with pytest.raises(ProcessLookupError):
        os.killpg(server.process.pid, 0)  # no process of its group is left
