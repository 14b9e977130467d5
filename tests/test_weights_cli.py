"""`clipopt weights list | download | verify | info`, and resumable, verified downloads from a
loopback HTTP server (the only network the tests may use)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import tiny
import torch
from click.testing import CliRunner
from test_weights import OPENAI_REPO, fill_hf_cache

from clipstyler_opt.cli import cli
from clipstyler_opt.core.errors import WeightsError
from clipstyler_opt.models import catalog
from clipstyler_opt.models.catalog import CATALOG
from clipstyler_opt.models.inspect import infer_architecture, open_clip_candidates, tensor_table
from clipstyler_opt.weights.download import VGG19_FILENAME, download_file

SIGLIP_REPO = "timm/ViT-B-16-SigLIP"  # ViT-B-16-SigLIP/webli: weights and tokenizer
PAYLOAD = bytes(range(256)) * 800  # 204,800 bytes
DROP_AFTER = 50_000


def invoke(args: list[str]) -> Any:
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def error_lines(result: Any) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


class Loopback:
    """An HTTP server on 127.0.0.1 serving one payload at any path. It can drop the connection
    after `drop_after` bytes of its first answer, and honour or ignore Range headers."""

    def __init__(self, payload: bytes, *, drop_after: int | None = None, honour_range: bool = True) -> None:
        self.payload, self.drop_after, self.honour_range = payload, drop_after, honour_range
        self.ranges: list[str | None] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                asked = self.headers.get("Range")
                owner.ranges.append(asked)
                start = int(asked.removeprefix("bytes=").split("-")[0]) if asked and owner.honour_range else 0
                body = owner.payload[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(owner.payload) - 1}/{len(owner.payload)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if owner.drop_after is not None:
                    body, owner.drop_after = body[:owner.drop_after], None  # then close: HTTP/1.0
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/{VGG19_FILENAME}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[Loopback] = []

    def start(payload: bytes, **options: Any) -> Loopback:
        servers.append(Loopback(payload, **options))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def fill_hf_blob_cache(cache: Path, repo_id: str, filename: str, payload: bytes, blob_name: str | None = None) -> Path:
    """The hub cache's real layout: blobs/<sha256> and a relative symbolic link in snapshots/<rev>/."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    revision = "89abcdef0123456789abcdef0123456789abcdef"
    blob = repo / "blobs" / (blob_name or hashlib.sha256(payload).hexdigest())
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(payload)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    link = repo / "snapshots" / revision / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
    return link


def flip_a_byte(path: Path, offset: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


# --- the catalog ---

def test_catalog_parameter_counts_are_those_of_the_architectures() -> None:
    import open_clip
    import torchvision

    counts = {entry.name: entry.parameters for entry in CATALOG}
    assert {"ViT-B-32-quickgelu/openai", "ViT-B-16/openai", "ViT-L-14/openai", "ViT-B-16-SigLIP/webli",
            "ViT-B-16-SigLIP2/webli", "ViT-SO400M-14-SigLIP/webli", "vgg19"} == set(counts)
    with torch.device("meta"):
        vgg = torchvision.models.vgg19()
    assert counts["vgg19"] == sum(p.numel() for p in vgg.state_dict().values()) == 143_667_240  # torchvision's docs
    clip = open_clip.create_model("ViT-B-32-quickgelu", device="meta")
    assert counts["ViT-B-32-quickgelu/openai"] == sum(t.numel() for t in clip.state_dict().values())
    assert all(entry.approx_download_bytes == 4 * entry.parameters for entry in CATALOG)


# --- weights list ---

def test_list_on_empty_caches_says_nothing_is_cached() -> None:
    result = invoke(["weights", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert not any(row["cached"] for row in rows.values())
    assert rows["ViT-B-16-SigLIP/webli"]["tokenizer"] == {"repo": SIGLIP_REPO, "cached": False, "path": None}
    assert rows["ViT-B-32-quickgelu/openai"]["tokenizer"] is None and rows["ViT-B-32-quickgelu/openai"]["default"]
    assert rows["vgg19"]["approx_download_bytes"] == 4 * 143_667_240
    text = invoke(["weights", "list"]).stdout
    assert text.count("not cached") == 7 + 3  # seven backbones, three tokenizers


def test_list_finds_files_where_a_run_would(isolated_caches: Path, tmp_path: Path, tiny_paths: dict[str, Path]) -> None:
    vgg = isolated_caches / "torch" / "hub" / "checkpoints" / VGG19_FILENAME
    vgg.parent.mkdir(parents=True)
    vgg.write_bytes(tiny_paths["vgg_checkpoint"].read_bytes())
    clip = fill_hf_cache(isolated_caches / "hf" / "hub", OPENAI_REPO, "open_clip_model.safetensors",
                         tiny_paths["clip_checkpoint"])
    tokenizer = tmp_path / "tokenizer.json"
    tokenizer.write_text("{}")
    fill_hf_cache(isolated_caches / "hf" / "hub", SIGLIP_REPO, "tokenizer.json", tokenizer)
    extra = fill_hf_cache(tmp_path / "extra", "timm/vit_base_patch16_clip_224.openai", "open_clip_pytorch_model.bin",
                          tiny_paths["clip_checkpoint"])
    rows = {row["name"]: row for row in json.loads(invoke(["weights", "list", "--json"]).stdout)}
    assert rows["vgg19"]["path"] == str(vgg)
    assert Path(rows["ViT-B-32-quickgelu/openai"]["path"]).resolve() == clip.resolve()
    assert rows["ViT-B-16-SigLIP/webli"]["tokenizer"]["cached"] and not rows["ViT-B-16-SigLIP/webli"]["cached"]
    assert not rows["ViT-B-16-SigLIP2/webli"]["tokenizer"]["cached"]  # another tokenizer repo
    assert not rows["ViT-B-16/openai"]["cached"]
    with_extra = {row["name"]: row for row in
                  json.loads(invoke(["weights", "list", "--json", "--cache-dir", str(tmp_path / "extra")]).stdout)}
    assert Path(with_extra["ViT-B-16/openai"]["path"]).resolve() == extra.resolve()


# --- downloads ---

def test_a_dropped_download_keeps_its_part_and_resumes_with_range(serve: Any, tmp_path: Path) -> None:
    server = serve(PAYLOAD, drop_after=DROP_AFTER)
    dest = tmp_path / "weights.bin"
    expected = hashlib.sha256(PAYLOAD).hexdigest()
    with pytest.raises(WeightsError) as error:
        download_file(server.url, dest, sha256=expected)
    assert "\n" not in str(error.value) and "rerun to resume" in str(error.value)
    part = tmp_path / "weights.bin.part"
    assert part.read_bytes() == PAYLOAD[:DROP_AFTER] and not dest.exists()
    assert download_file(server.url, dest, sha256=expected) == dest
    assert server.ranges == [None, f"bytes={DROP_AFTER}-"]
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == expected and not part.exists()


def test_a_server_that_ignores_range_makes_the_download_restart(serve: Any, tmp_path: Path) -> None:
    server = serve(PAYLOAD, drop_after=DROP_AFTER, honour_range=False)
    dest = tmp_path / "weights.bin"
    with pytest.raises(WeightsError):
        download_file(server.url, dest, sha256_prefix=hashlib.sha256(PAYLOAD).hexdigest()[:8])
    download_file(server.url, dest, sha256_prefix=hashlib.sha256(PAYLOAD).hexdigest()[:8])
    assert server.ranges[1] == f"bytes={DROP_AFTER}-" and dest.read_bytes() == PAYLOAD


def test_a_download_with_the_wrong_hash_leaves_nothing(serve: Any, tmp_path: Path) -> None:
    server = serve(PAYLOAD)
    with pytest.raises(WeightsError, match="does not match"):
        download_file(server.url, tmp_path / "weights.bin", sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_cli_download_of_a_corrupt_mirror_exits_4_and_leaves_nothing(serve: Any, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     tiny_paths: dict[str, Path]) -> None:
    # Any file but torchvision's own fails the check: its SHA-256 cannot start with the name's dcbb9e9d.
    server = serve(tiny_paths["vgg_checkpoint"].read_bytes())
    monkeypatch.setenv("CLIPOPT_VGG19_URL", server.url)
    result = invoke(["weights", "download", "vgg19", "--to", str(tmp_path / "out")])
    assert result.exit_code == 4
    assert len(error_lines(result)) == 1 and "dcbb9e9d" in error_lines(result)[0]
    assert list((tmp_path / "out").iterdir()) == []


def test_cli_download_resumes_a_dropped_connection(serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve(PAYLOAD, drop_after=DROP_AFTER)
    monkeypatch.setenv("CLIPOPT_VGG19_URL", server.url)
    out = tmp_path / "out"
    first = invoke(["weights", "download", "vgg19", "--to", str(out)])
    assert first.exit_code == 4 and len(error_lines(first)) == 1
    assert f"closed after {DROP_AFTER} of {len(PAYLOAD)} bytes" in first.stderr
    assert (out / f"{VGG19_FILENAME}.part").stat().st_size == DROP_AFTER
    second = invoke(["weights", "download", "vgg19", "--to", str(out)])
    assert server.ranges == [None, f"bytes={DROP_AFTER}-"]
    assert second.exit_code == 4 and "does not match the expected dcbb9e9d" in second.stderr  # not torchvision's file
    assert list(out.iterdir()) == []


def test_cli_download_to_a_folder_resumes_records_and_prints_the_option(serve: Any, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         tiny_paths: dict[str, Path]) -> None:
    # The known hash is the only thing a stand-in file cannot match, so it is set to the stand-in's.
    payload = tiny_paths["vgg_checkpoint"].read_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    monkeypatch.setattr(catalog, "VGG19_SHA256_PREFIX", digest[:8])
    server = serve(payload, drop_after=len(payload) // 2)
    monkeypatch.setenv("CLIPOPT_VGG19_URL", server.url)
    out = tmp_path / "out"
    assert invoke(["weights", "download", "vgg19", "--to", str(out)]).exit_code == 4
    result = invoke(["weights", "download", "vgg19", "--to", str(out)])
    assert result.exit_code == 0, result.output
    assert server.ranges == [None, f"bytes={len(payload) // 2}-"]
    target = out / VGG19_FILENAME
    assert target.read_bytes() == payload and sorted(p.name for p in out.iterdir()) == ["SHA256SUMS", VGG19_FILENAME]
    assert (out / "SHA256SUMS").read_text() == f"{digest}  {VGG19_FILENAME}\n"
    assert f"{target}  sha256 {digest}" in result.stdout and f"--vgg-checkpoint {target}" in result.stdout
    again = invoke(["weights", "download", "vgg19", "--to", str(out)])
    assert again.exit_code == 0 and len(server.ranges) == 2  # already there and intact: nothing fetched


def test_cli_download_into_the_cache_uses_a_verified_cached_file(isolated_caches: Path,
                                                                  tiny_paths: dict[str, Path]) -> None:
    payload = tiny_paths["clip_checkpoint"].read_bytes()
    link = fill_hf_blob_cache(isolated_caches / "hf" / "hub", OPENAI_REPO, "open_clip_model.safetensors", payload)
    result = invoke(["weights", "download", "ViT-B-32-quickgelu/openai"])
    assert result.exit_code == 0, result.output
    assert f"{link}  sha256 {hashlib.sha256(payload).hexdigest()}" in result.stdout
    flip_a_byte(link)
    result = invoke(["weights", "download", "ViT-B-32-quickgelu/openai"])
    assert result.exit_code == 4 and "corrupt" in error_lines(result)[0] and "delete it" in error_lines(result)[0]


@pytest.mark.parametrize("spec, code", [("no-such-model/openai", 2), ("ViT-B-32-quickgelu/no-such-tag", 2),
                                        ("ViT-B-32-quickgelu:file=x.pt", 2)])
def test_cli_download_refuses_specs_with_nothing_to_fetch(spec: str, code: int, serve: Any,
                                                          monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server = serve(PAYLOAD)
    monkeypatch.setenv("CLIPOPT_VGG19_URL", server.url)
    result = invoke(["weights", "download", "vgg19", spec, "--to", str(tmp_path / "out")])
    assert result.exit_code == code and len(error_lines(result)) == 1
    assert server.ranges == []  # checked before anything was fetched


@pytest.mark.parametrize("to", [False, True])
def test_cli_hub_download_without_network_fails_in_seconds(to: bool, tmp_path: Path) -> None:
    start = time.monotonic()
    result = invoke(["weights", "download", "ViT-B-16-SigLIP/webli"] + (["--to", str(tmp_path / "out")] if to else []))
    assert time.monotonic() - start < 10
    assert result.exit_code == 4 and len(error_lines(result)) == 1 and "cannot reach" in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_download_says_so_when_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIPOPT_OFFLINE", "1")
    result = invoke(["weights", "download", "vgg19"])
    assert result.exit_code == 4 and "CLIPOPT_OFFLINE" in result.stderr


# --- weights verify ---

def test_verify_passes_intact_files_and_checks_git_ids(isolated_caches: Path, tiny_paths: dict[str, Path]) -> None:
    cache = isolated_caches / "hf" / "hub"
    fill_hf_blob_cache(cache, OPENAI_REPO, "open_clip_model.safetensors", tiny_paths["clip_checkpoint"].read_bytes())
    # `git hash-object` of "hello\n" is ce013625...: files outside LFS are stored under that id
    fill_hf_blob_cache(cache, SIGLIP_REPO, "tokenizer_config.json", b"hello\n",
                       blob_name="ce013625030ba8dba906f756967f9e9ca394464a")
    result = invoke(["weights", "verify"])
    assert result.exit_code == 0, result.output
    assert "open_clip_model.safetensors (sha256+structure)" in result.stdout
    assert "tokenizer_config.json (git-sha1)" in result.stdout


def test_verify_reports_corrupt_files_and_partial_downloads(isolated_caches: Path, tiny_paths: dict[str, Path]) -> None:
    cache = isolated_caches / "hf" / "hub"
    flipped = fill_hf_blob_cache(cache, OPENAI_REPO, "open_clip_model.safetensors",
                                 tiny_paths["clip_checkpoint"].read_bytes())
    flip_a_byte(flipped)
    incomplete = flipped.resolve().parent / f"{'a' * 64}.incomplete"
    incomplete.write_bytes(b"x" * 10)
    truncated = fill_hf_cache(cache, "timm/vit_large_patch14_clip_224.openai", "open_clip_model.safetensors",
                              tiny_paths["clip_checkpoint"])
    truncated.write_bytes(truncated.read_bytes()[:-10])
    checkpoints = isolated_caches / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / VGG19_FILENAME).write_bytes(tiny_paths["vgg_checkpoint"].read_bytes())
    (checkpoints / f"{VGG19_FILENAME}.part").write_bytes(b"x" * 5)
    result = invoke(["weights", "verify"])
    assert result.exit_code == 4
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 5 and error_lines(result) == ["error: 5 of 5 cached files have problems (listed above)"]
    by_path = {line.split(": ")[1]: line for line in problems}
    assert "corrupt: its sha256" in by_path[str(flipped)]
    assert "partial download (10 bytes)" in by_path[str(incomplete)]
    assert "not fully covered" in by_path[str(truncated)] or "truncated" in by_path[str(truncated)]
    assert "expected dcbb9e9d" in by_path[str(checkpoints / VGG19_FILENAME)]
    assert "partial download (5 bytes)" in by_path[str(checkpoints / f"{VGG19_FILENAME}.part")]
    only_vgg = invoke(["weights", "verify", "vgg19"])
    assert only_vgg.exit_code == 4 and "2 of 2" in only_vgg.stderr


# --- weights info ---

def test_info_reads_the_tiny_clip_architecture(tiny_paths: dict[str, Path]) -> None:
    path = tiny_paths["clip_checkpoint"]
    result = invoke(["weights", "info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    config: dict[str, Any] = tiny.TINY_CLIP_CONFIG
    vision, text = config["vision_cfg"], config["text_cfg"]
    assert report["architecture"]["family"] == "open_clip-vit"
    assert report["architecture"]["details"] == {
        "width": vision["width"], "patch_size": vision["patch_size"], "layers": vision["layers"],
        "image_size": vision["image_size"], "vocab_size": text["vocab_size"], "text_width": text["width"],
        "context_length": text["context_length"], "text_layers": text["layers"], "embed_dim": config["embed_dim"]}
    # Other tests may register copies of this architecture under other names; it must be among them.
    assert tiny.TINY_CLIP_NAME in report["architecture"]["candidates"]
    assert not any(name.startswith("ViT") for name in report["architecture"]["candidates"])
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        elements = sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys())  # noqa: SIM118 - safe_open handles are not iterable
    assert report["parameters"] == elements and report["dtypes"] == {"float32": elements}
    assert report["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert report["size_bytes"] == path.stat().st_size and report["format"] == "safetensors"
    lines = invoke(["weights", "info", str(path)]).stdout
    assert "architecture: open_clip CLIP with open_clip's ViT image tower" in lines
    assert f"candidates: {tiny.TINY_CLIP_NAME}" in lines


def test_info_reads_the_tiny_siglip_and_vgg(tmp_path: Path, tiny_paths: dict[str, Path]) -> None:
    siglip = tiny.write_tiny_siglip(tmp_path / "siglip")["checkpoint"]
    report = json.loads(invoke(["weights", "info", str(siglip), "--json"]).stdout)
    assert report["architecture"]["family"] == "open_clip-timm" and "SigLIP" in report["architecture"]["summary"]
    details = report["architecture"]["details"]
    siglip_config: dict[str, Any] = tiny.TINY_SIGLIP_CONFIG
    text = siglip_config["model_cfg"]["text_cfg"]
    assert (details["patch_size"], details["width"], details["layers"], details["image_size"]) == (8, 64, 2, 32)
    assert (details["vocab_size"], details["context_length"]) == (text["vocab_size"], text["context_length"])
    assert tiny.TINY_SIGLIP_NAME in report["architecture"]["candidates"]
    vgg = json.loads(invoke(["weights", "info", str(tiny_paths["vgg_checkpoint"]), "--json"]).stdout)
    assert vgg["architecture"]["family"] == "vgg" and vgg["content_network"] == "loads"
    assert vgg["architecture"]["details"]["widths"] == [w for w in tiny.TINY_VGG_WIDTHS if w != "M"]
    assert vgg["architecture"]["candidates"] == []  # VGG19's layer layout, but not its widths


def test_info_names_the_real_vit_b_32_from_its_shapes() -> None:
    import open_clip

    architecture = infer_architecture(tensor_table(open_clip.create_model("ViT-B-32", device="meta").state_dict()))
    # OpenAI's ViT-B/32: 768 wide, 12 layers, 32 px patches at 224 px; text 512 wide, 12 layers
    assert architecture.details == {"width": 768, "patch_size": 32, "layers": 12, "image_size": 224,
                                    "vocab_size": 49408, "text_width": 512, "context_length": 77, "text_layers": 12,
                                    "embed_dim": 512}
    assert open_clip_candidates(architecture) == ("ViT-B-32", "ViT-B-32-quickgelu")


@pytest.mark.parametrize("content, problem", [(b"just some text\n", "a text file"),
                                              (b"\x00" * 40, "unrecognised content")])
def test_info_on_a_file_that_is_no_checkpoint_exits_4(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "notes.safetensors"
    path.write_bytes(content)
    result = invoke(["weights", "info", str(path)])
    assert result.exit_code == 4 and result.stdout == ""
    assert error_lines(result) == [f"error: cannot load weights from {path}: {problem}, not a checkpoint "
                                   "(neither safetensors nor a PyTorch file)"]
