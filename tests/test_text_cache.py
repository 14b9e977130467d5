"""The disk cache of text embeddings (textcache.py) and trimmed text encoding (backbones/clip.py)."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tiny
import torch
import torch.nn.functional as F
import toy

from clipstyler_opt import StyleConfig
from clipstyler_opt.core.backbone_spec import BackboneSpec
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.templates import template_texts
from clipstyler_opt.method.ensemble import Member, load_members
from clipstyler_opt.method.textcache import (
    ENTRY_SUFFIX,
    MAX_BYTES,
    MAX_ENTRIES,
    TextCache,
    backbone_identity,
    text_cache_dir,
)
from clipstyler_opt.models.clip import OpenClipBackbone

CPU = torch.device("cpu")
STYLE, SOURCE = "starry night by Vincent van Gogh", "a Photo"


class CountingEncoder:
    """Wraps a backbone's real `encode_text` and counts the calls that reach the text tower."""

    def __init__(self, encode: Callable[[list[str]], torch.Tensor]) -> None:
        self.encode, self.calls = encode, 0

    def __call__(self, texts: list[str]) -> torch.Tensor:
        self.calls += 1
        return self.encode(texts)


def member(config: StyleConfig, monkeypatch: pytest.MonkeyPatch) -> tuple[Member, CountingEncoder]:
    (loaded,) = load_members(config, CPU)
    counter = CountingEncoder(loaded.backbone.encode_text)
    monkeypatch.setattr(loaded.backbone, "encode_text", counter)
    return loaded, counter


def entries() -> list[Path]:
    folder = text_cache_dir()
    return sorted(folder.glob(f"*{ENTRY_SUFFIX}")) if folder.is_dir() else []


# --- hits, misses and what is shared ---
def test_a_fresh_member_on_the_same_weights_reads_embeddings_from_disk(
        tiny_config: StyleConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    first, first_calls = member(tiny_config, monkeypatch)
    style, source = first.texts(STYLE, "imagenet"), first.texts(SOURCE, "imagenet")
    assert first_calls.calls == 2 and len(entries()) == 2
    assert text_cache_dir() == Path(os.environ["CLIPOPT_CACHE_DIR"]) / "text"

    second, second_calls = member(tiny_config, monkeypatch)
    cached_style, cached_source = second.texts(STYLE, "imagenet"), second.texts(SOURCE, "imagenet")
    assert second_calls.calls == 0
    assert torch.equal(cached_style, style) and torch.equal(cached_source, source)  # bitwise
    assert cached_style.dtype == torch.float32 and cached_style.device == CPU
    second.texts(STYLE, "simple")  # another template set is another entry
    assert second_calls.calls == 1 and len(entries()) == 3


def test_other_weights_under_the_same_name_do_not_share_entries(
        tiny_config: StyleConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, _ = member(tiny_config, monkeypatch)
    original = first.texts(STYLE, "imagenet")
    _, other_checkpoint = tiny.write_tiny_clip(tmp_path / "other", seed=1)  # same architecture name, other bytes
    other, calls = member(tiny_config.replace(clip_checkpoint=other_checkpoint), monkeypatch)
    assert other.spec.model == first.spec.model == tiny.TINY_CLIP_NAME
    assert not torch.equal(other.texts(STYLE, "imagenet"), original)
    assert calls.calls == 1 and len(entries()) == 2
    identity = backbone_identity(first.backbone)
    assert identity is not None and identity["weights_sha256"] == \
        hashlib.sha256(Path(str(tiny_config.clip_checkpoint)).read_bytes()).hexdigest()


def test_the_cache_can_be_turned_off(tiny_config: StyleConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIPOPT_TEXT_CACHE", "0")
    for _ in range(2):
        loaded, calls = member(tiny_config, monkeypatch)
        loaded.texts(STYLE, "simple")
        assert calls.calls == 1
    assert entries() == []
    monkeypatch.setenv("CLIPOPT_TEXT_CACHE", "maybe")
    with pytest.raises(ConfigError, match=r"^CLIPOPT_TEXT_CACHE='maybe': use 0 .*, 1 .*$"):
        load_members(tiny_config, CPU)


def test_the_cache_folder_follows_the_user_cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLIPOPT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert text_cache_dir() == tmp_path / "xdg" / "clipstyler_opt" / "text"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert text_cache_dir() == tmp_path / "home" / ".cache" / "clipstyler_opt" / "text"


def test_backbones_without_a_weights_file_are_cached_in_memory_only() -> None:
    backbone = toy.ToyColourBackbone()
    loaded = Member(BackboneSpec("toy-colour"), backbone)  # type: ignore[arg-type]
    assert backbone_identity(backbone) is None and loaded.texts.identity is None
    loaded.texts("red", "none")
    assert entries() == [] and not text_cache_dir().exists()


# --- damaged entries ---
def _header(path: Path) -> dict[str, Any]:
    """An entry's JSON header, read by the documented layout (magic, u32 length, header, payload)."""
    data = path.read_bytes()
    (length,) = struct.unpack_from("<I", data, 8)
    return dict(json.loads(data[12:12 + length]))


def _rebuilt(header: dict[str, Any], payload: bytes) -> bytes:
    header = {**header, "sha256": hashlib.sha256(payload).hexdigest()}
    text = json.dumps(header).encode()
    return b"clipoptT" + struct.pack("<I", len(text)) + text + payload


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "flipped payload byte", "other key"])
def test_a_damaged_entry_is_ignored_and_rewritten(damage: str, tiny_config: StyleConfig,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    first, _ = member(tiny_config, monkeypatch)
    good = first.texts(STYLE, "imagenet")
    first.texts(SOURCE, "imagenet")
    (style_entry,) = [p for p in entries() if STYLE in _header(p)["key"]]
    (source_entry,) = [p for p in entries() if p != style_entry]
    data = style_entry.read_bytes()
    damaged = {"truncated": data[: len(data) - 7], "garbage": os.urandom(len(data)), "empty": b"",
               "flipped payload byte": data[:-1] + bytes([data[-1] ^ 0x01]),
               "other key": source_entry.read_bytes()}[damage]
    style_entry.write_bytes(damaged)

    second, calls = member(tiny_config, monkeypatch)
    assert torch.equal(second.texts(STYLE, "imagenet"), good)
    assert calls.calls == 1  # the damaged entry was not used
    assert style_entry.read_bytes() == data  # rewritten, byte for byte as before
    third, calls = member(tiny_config, monkeypatch)
    assert torch.equal(third.texts(STYLE, "imagenet"), good) and calls.calls == 0


def test_non_finite_values_are_neither_stored_nor_read(tmp_path: Path) -> None:
    cache, key = TextCache(tmp_path), {"text": "x"}
    assert cache.save(key, torch.tensor([1.0, float("nan")])) is False and cache.load(key) is None
    assert cache.save(key, torch.tensor([0.25, -2.0, 3.0]))
    header = _header(cache.path_for(key))
    finite = struct.pack("<3f", 1.5, 2.5, -0.5)
    cache.path_for(key).write_bytes(_rebuilt(header, finite))
    rebuilt = cache.load(key)
    assert rebuilt is not None and torch.equal(rebuilt, torch.tensor([1.5, 2.5, -0.5]))  # a rebuilt entry passes...
    cache.path_for(key).write_bytes(_rebuilt(header, struct.pack("<3f", 1.5, float("inf"), -0.5)))
    assert cache.load(key) is None  # ...unless a value is not finite


# --- concurrency ---
def test_concurrent_writers_never_expose_a_torn_entry(tmp_path: Path) -> None:
    """Two writers store different values under one key while a reader reads: every read is
    absent (before the first write) or exactly one writer's values."""
    cache, key = TextCache(tmp_path), {"text": "contended"}
    generator = torch.Generator().manual_seed(0)
    values = [torch.randn(1 << 16, generator=generator) for _ in range(2)]  # 256 KiB each

    def write(tensor: torch.Tensor) -> None:
        for _ in range(60):
            assert cache.save(key, tensor)

    writers = [threading.Thread(target=write, args=(tensor,)) for tensor in values]
    for writer in writers:
        writer.start()
    reads, seen_entry, finished = 0, False, False
    while not finished:
        finished = not any(writer.is_alive() for writer in writers)
        got = cache.load(key)
        if got is None:
            assert not seen_entry, "an entry that existed read as invalid: a torn write"
            continue
        seen_entry, reads = True, reads + 1
        assert any(torch.equal(got, tensor) for tensor in values)
    for writer in writers:
        writer.join()
    assert seen_entry and reads > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [cache.path_for(key).name]  # no temporary files left


# --- size bounds ---
def test_eviction_keeps_the_most_recently_used_entries_within_the_count(tmp_path: Path) -> None:
    cache = TextCache(tmp_path, max_entries=4)
    keys = [{"text": f"e{i}"} for i in range(6)]
    past = time.time() - 1000
    for i, key in enumerate(keys[:4]):
        cache.save(key, torch.full((8,), float(i)))
        os.utime(cache.path_for(key), (past + i, past + i))
    hit = cache.load(keys[0])  # a hit: e0 becomes the most recently used
    assert hit is not None and torch.equal(hit, torch.zeros(8))
    cache.save(keys[4], torch.ones(8))
    cache.save(keys[5], torch.ones(8))
    kept = {p.name for p in tmp_path.iterdir()}
    assert kept == {cache.path_for(keys[i]).name for i in (0, 3, 4, 5)}


def test_eviction_keeps_the_folder_within_its_byte_bound(tmp_path: Path) -> None:
    probe = TextCache(tmp_path / "probe")
    probe.save({"text": "e0"}, torch.zeros(256))
    entry_bytes = probe.path_for({"text": "e0"}).stat().st_size
    cache = TextCache(tmp_path / "bounded", max_bytes=3 * entry_bytes + entry_bytes // 2)
    for i in range(7):
        cache.save({"text": f"e{i}"}, torch.zeros(256))
    files = list((tmp_path / "bounded").iterdir())
    assert len(files) == 3 and sum(p.stat().st_size for p in files) <= cache.max_bytes
    assert cache.load({"text": "e6"}) is not None and cache.load({"text": "e0"}) is None
    assert (MAX_ENTRIES, MAX_BYTES) == (2000, 64 * 2**20)


def test_temporary_files_left_by_a_killed_writer_are_cleaned_up(tmp_path: Path) -> None:
    stale, fresh = tmp_path / ".stale.tmp", tmp_path / ".fresh.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    TextCache(tmp_path).save({"text": "x"}, torch.zeros(4))
    assert not stale.exists() and fresh.exists()


# --- trimmed encoding ---
def _sequence_lengths(module: torch.nn.Module) -> list[int]:
    """Records the sequence length every call of `module` (a text transformer) sees."""
    seen: list[int] = []
    module.register_forward_pre_hook(lambda _, args: seen.append(args[0].shape[1]))
    return seen


TEXTS = template_texts(SOURCE, "imagenet") + template_texts(STYLE, "imagenet")


def _assert_trimmed_equals_padded(backbone: OpenClipBackbone, tower: Any, texts: list[str] = TEXTS) -> None:
    """`texts` hold the source's templates, then as many of the style's."""
    tokens = backbone.tokenizer(texts)
    real_length = int((tokens != 0).sum(dim=-1).max())  # start, BPE tokens and end; padding is 0
    assert real_length < tokens.shape[1]
    seen = _sequence_lengths(tower.transformer)
    with torch.no_grad():
        padded = backbone.model.encode_text(tokens)  # type: ignore[operator]  # open_clip's forward, 77 positions
        trimmed = backbone.encode_text(texts)
    assert seen == [tokens.shape[1], real_length]
    assert (trimmed - padded).abs().max() <= 1e-6 * padded.abs().max()
    assert (F.normalize(trimmed, dim=-1) - F.normalize(padded, dim=-1)).abs().max() <= 1e-6
    n = len(texts) // 2
    for half in (slice(0, n), slice(n, 2 * n)):  # the template-averaged embeddings the loss uses
        assert (F.normalize(trimmed[half].mean(0), dim=-1) - F.normalize(padded[half].mean(0), dim=-1)).abs().max() \
            <= 1e-6


def _backbone(model: torch.nn.Module, tokenizer_model: str) -> OpenClipBackbone:
    import open_clip

    return OpenClipBackbone(model.eval(), open_clip.get_tokenizer(tokenizer_model),
                            {"size": 224, "mean": (0.5,) * 3, "std": (0.5,) * 3}, {})


@pytest.mark.parametrize("variant", ["clip", "custom text, argmax", "custom text, eos"])
def test_trimmed_encoding_equals_padded_on_the_tiny_clip(variant: str, tmp_path: Path) -> None:
    """Both open_clip layouts (CLIP's inlined tower, CustomTextCLIP's TextTransformer) and both
    EOT pool types."""
    import open_clip

    name = f"clipopt-trim-{variant.replace(' ', '').replace(',', '-')}"
    text_cfg: dict[str, Any] = {**tiny.TINY_CLIP_CONFIG["text_cfg"]}  # type: ignore[dict-item]
    if variant.endswith("eos"):
        text_cfg.update(pool_type="eos", eos_id=49407)  # CLIP's end-of-text id
    config = {**tiny.TINY_CLIP_CONFIG, "text_cfg": text_cfg, "custom_text": variant != "clip"}
    (tmp_path / f"{name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / f"{name}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(name)
    tower = model if variant == "clip" else model.text
    _assert_trimmed_equals_padded(_backbone(model, "ViT-B-32"), tower)


def test_trimmed_encoding_equals_padded_on_a_full_size_vit_b_32() -> None:
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32-quickgelu")
    # every 8th template of each text and the longest (11 + 11): the full tower is slow on a CPU
    longest = max(range(158), key=lambda i: len(TEXTS[i])) % 79
    chosen = sorted({*range(0, 79, 8), longest})
    texts = [TEXTS[i] for i in chosen] + [TEXTS[79 + i] for i in chosen]
    assert max(len(text) for text in texts) == max(len(text) for text in TEXTS)
    _assert_trimmed_equals_padded(_backbone(model, "ViT-B-32-quickgelu"), model, texts)


def test_a_tower_without_a_causal_mask_is_not_trimmed(tmp_path: Path, tiny_paths: dict[str, Path]) -> None:
    """SigLIP's text tower attends both ways and pools the last position: every position counts."""
    paths = tiny.write_tiny_siglip(tmp_path / "siglip")
    config = StyleConfig(backbone=(f"{tiny.TINY_SIGLIP_NAME}:file={paths['checkpoint']}:"
                                   f"tokenizer={paths['tokenizer']}",),
                         clip_model_config=(paths["config"],), vgg_checkpoint=tiny_paths["vgg_checkpoint"],
                         device="cpu", precision="fp32")
    (loaded,) = load_members(config, CPU)
    backbone = loaded.backbone
    assert isinstance(backbone, OpenClipBackbone)
    model: Any = backbone.model
    assert model.text.attn_mask is None
    identity = backbone_identity(backbone)  # a Hugging Face tokenizer is known by its files' sha256
    assert identity is not None and identity["tokenizer"] == {
        name: hashlib.sha256((paths["tokenizer"] / name).read_bytes()).hexdigest()
        for name in ("tokenizer.json", "tokenizer_config.json")}
    texts = ["red", "a photo of a cat", "oil painting"]
    tokens = backbone.tokenizer(texts)
    assert int((tokens != 0).sum(dim=-1).max()) < tokens.shape[1]  # there is padding that trimming would cut
    seen = _sequence_lengths(model.text.transformer)
    with torch.no_grad():
        assert torch.equal(backbone.encode_text(texts), model.encode_text(tokens))
    assert seen == [tokens.shape[1]] * 2
