"""Weight resolution: explicit file -> caches -> download -> one-line error; safe loading only;
weights files identified by a cached SHA-256 of their bytes."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tiny
import torch

from clipstyler_opt import StyleConfig, Stylizer
from clipstyler_opt.core import digests as filehash
from clipstyler_opt.core.errors import WeightsError
from clipstyler_opt.models.vgg import LAYER_NAMES, load_vgg_features
from clipstyler_opt.weights.checkpoints import load_state_dict
from clipstyler_opt.weights.resolve import VGG19_FILENAME, resolve_clip_weights, resolve_vgg_weights

OPENAI_REPO = "timm/vit_base_patch32_clip_224.openai"


def fill_hf_cache(cache: Path, repo_id: str, filename: str, payload: Path) -> Path:
    """Lay a file out the way huggingface_hub's cache does (refs/main -> snapshots/<rev>/file)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    target = repo / "snapshots" / revision / filename
    target.parent.mkdir(parents=True)
    target.write_bytes(payload.read_bytes())
    return target


def test_vgg_layer_names_follow_torchvision_indices() -> None:
    assert LAYER_NAMES.index("relu4_2") == 22 and LAYER_NAMES.index("relu5_2") == 31
    assert len(LAYER_NAMES) == 37


def test_explicit_checkpoint_wins(tiny_paths: dict[str, Path]) -> None:
    found = resolve_vgg_weights(explicit=tiny_paths["vgg_checkpoint"], cache_dir=None, offline=True)
    assert found.origin == "explicit" and found.path == tiny_paths["vgg_checkpoint"]


def test_missing_explicit_checkpoint_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"--vgg-checkpoint .*no such file"):
        resolve_vgg_weights(explicit=tmp_path / "nope.pth", cache_dir=None, offline=False)


def test_vgg_is_found_in_torch_hub_cache(isolated_caches: Path, tiny_paths: dict[str, Path]) -> None:
    cached = isolated_caches / "torch" / "hub" / "checkpoints" / VGG19_FILENAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(tiny_paths["vgg_checkpoint"].read_bytes())
    found = resolve_vgg_weights(explicit=None, cache_dir=None, offline=True)
    assert found.origin == "cache" and found.path == cached


def test_clip_is_found_in_the_hugging_face_cache(isolated_caches: Path, tiny_paths: dict[str, Path]) -> None:
    cached = fill_hf_cache(isolated_caches / "hf" / "hub", OPENAI_REPO, "open_clip_model.safetensors",
                           tiny_paths["clip_checkpoint"])
    found = resolve_clip_weights("ViT-B-32-quickgelu", "openai", explicit=None, cache_dir=None, offline=True)
    assert found.origin == "cache" and found.path.resolve() == cached.resolve()


def test_extra_cache_dir_is_searched_first(isolated_caches: Path, tmp_path: Path, tiny_paths: dict[str, Path]) -> None:
    fill_hf_cache(isolated_caches / "hf" / "hub", OPENAI_REPO, "open_clip_model.safetensors",
                  tiny_paths["clip_checkpoint"])
    mine = fill_hf_cache(tmp_path / "mine", OPENAI_REPO, "open_clip_pytorch_model.bin", tiny_paths["clip_checkpoint"])
    found = resolve_clip_weights("ViT-B-32-quickgelu", "openai", explicit=None, cache_dir=tmp_path / "mine",
                                 offline=True)
    assert found.path.resolve() == mine.resolve()


def test_offline_with_empty_caches_fails_fast_with_the_fix() -> None:
    start = time.monotonic()
    with pytest.raises(WeightsError) as error:
        resolve_clip_weights("ViT-B-32-quickgelu", "openai", explicit=None, cache_dir=None, offline=True)
    assert time.monotonic() - start < 5
    message = str(error.value)
    assert "offline" in message and "--clip-checkpoint" in message and OPENAI_REPO in message
    assert "\n" not in message


def test_offline_can_be_set_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIPOPT_OFFLINE", "1")
    with pytest.raises(WeightsError, match="offline"):
        resolve_vgg_weights(explicit=None, cache_dir=None, offline=False)


def test_without_network_the_download_fails_in_seconds_with_the_fix() -> None:
    start = time.monotonic()
    with pytest.raises(WeightsError) as error:
        resolve_vgg_weights(explicit=None, cache_dir=None, offline=False)
    assert time.monotonic() - start < 5
    assert "download failed" in str(error.value) and "--vgg-checkpoint" in str(error.value)


def test_unknown_pretrained_tag_lists_the_known_ones() -> None:
    with pytest.raises(WeightsError, match="openai"):
        resolve_clip_weights("ViT-B-32-quickgelu", "no-such-tag", explicit=None, cache_dir=None, offline=True)


def test_pickled_objects_are_never_loaded(tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("unpickled!",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"features.0.weight": Payload()}, fh)
    with pytest.raises(WeightsError, match="cannot load weights"):
        load_state_dict(path)


def test_corrupt_checkpoint_is_a_weights_error(tmp_path: Path, tiny_config: StyleConfig) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot load weights"):
        Stylizer(tiny_config.replace(clip_checkpoint=bad))


def test_vgg_checkpoint_of_the_wrong_shape_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(4, 3, 3, 3)}, path)
    with pytest.raises(WeightsError, match=r"features\.0\.bias|features\.2\.weight"):
        load_vgg_features(path)


def test_tiny_vgg_loads_through_the_real_path_and_taps_two_layers(tiny_paths: dict[str, Path]) -> None:
    vgg = load_vgg_features(tiny_paths["vgg_checkpoint"])
    taps = vgg(torch.rand(1, 3, 64, 48))
    assert [t.shape[1:] for t in taps] == [(32, 8, 6), (32, 4, 3)]
    assert not any(p.requires_grad for p in vgg.parameters())


def test_clip_backbone_reads_preprocessing_from_open_clip(tiny_config: StyleConfig) -> None:
    backbone = Stylizer(tiny_config).members[0].backbone
    assert backbone.input_size == (tiny.TINY_CLIP_CONFIG["vision_cfg"]["image_size"],) * 2
    assert backbone.interpolation == "bicubic"
    assert not any(p.requires_grad for p in backbone.parameters())  # type: ignore[attr-defined]


def test_plain_vit_b_32_with_openai_tag_is_built_with_quickgelu(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The openai weights were trained with QuickGELU; plain ViT-B-32 would silently use GELU.
    The checkpoint is a file called `openai` in the current folder, as the tag is: it must be
    loaded as that file, offline, and never looked up on the hub (the network is blocked, so a
    lookup would fail the test)."""
    import open_clip
    from safetensors.torch import save_file

    from clipstyler_opt.models.clip import create_open_clip

    model = open_clip.create_model("ViT-B-32")
    monkeypatch.chdir(tmp_path)
    checkpoint = Path("openai")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(checkpoint))
    del model
    config = StyleConfig(clip_model="ViT-B-32", clip_pretrained="openai", clip_checkpoint=checkpoint, offline=True)
    backbone = create_open_clip(config.backbone_specs()[0], config.load_context(), torch.device("cpu"))
    # The text tower keeps open_clip's module; the image tower's is folded into SiLU (fast_vit.py).
    activation = backbone.model.transformer.resblocks[0].mlp.gelu
    assert type(activation).__name__ == "QuickGELU"
    assert backbone.provenance["quick_gelu"] is True
    assert backbone.input_size == (224, 224)
    assert torch.allclose(backbone.mean.flatten(), torch.tensor(open_clip.OPENAI_DATASET_MEAN))
    assert backbone.provenance["weights"] == str(tmp_path / "openai")
    assert backbone.provenance["weights_origin"] == "explicit"


# --- weights identified by content: the persistent sha256 cache ---

ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2, B.1
OLD_NS = 1_600_000_000 * 10**9  # a modification time well in the past (outside the racy window)


@pytest.fixture
def hash_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private hash cache folder and an empty in-process cache; yields the cache file's path."""
    monkeypatch.setenv("CLIPOPT_CACHE_DIR", str(tmp_path / "hash-cache"))
    filehash.clear_memory_cache()
    yield tmp_path / "hash-cache" / filehash.CACHE_FILE_NAME
    filehash.clear_memory_cache()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file that file_sha256 actually reads (the real reader still runs)."""
    seen: list[Path] = []
    real = filehash.sha256_of_file

    def counting(path: Path) -> str:
        seen.append(Path(path))
        return real(path)

    monkeypatch.setattr(filehash, "sha256_of_file", counting)
    return seen


def write_old(path: Path, data: bytes, mtime_ns: int = OLD_NS) -> Path:
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def test_file_sha256_is_the_sha256_of_the_bytes(hash_cache: Path, tmp_path: Path) -> None:
    assert filehash.file_sha256(write_old(tmp_path / "abc.bin", b"abc")) == ABC_SHA256
    big = write_old(tmp_path / "big.bin", bytes(range(256)) * 10_000)  # several read chunks
    assert filehash.file_sha256(big) == hashlib.sha256(big.read_bytes()).hexdigest()


def test_an_unchanged_file_is_read_once_per_machine(hash_cache: Path, tmp_path: Path, reads: list[Path]) -> None:
    path = write_old(tmp_path / "w.bin", b"abc")
    assert filehash.file_sha256(path) == ABC_SHA256
    assert filehash.file_sha256(path) == ABC_SHA256
    filehash.clear_memory_cache()  # as in a new process: only the file on disk remains
    assert filehash.file_sha256(path) == ABC_SHA256
    assert reads == [path]
    entries = json.loads(hash_cache.read_text())["entries"]
    stat = path.stat()
    assert entries[str(path.resolve())] | {"stored_ns": 0} == {
        "sha256": ABC_SHA256, "size": 3, "mtime_ns": OLD_NS, "inode": stat.st_ino, "device": stat.st_dev,
        "stored_ns": 0}


def test_the_disk_cache_is_trusted_while_path_size_mtime_inode_and_device_match(hash_cache: Path,
                                                                               tmp_path: Path) -> None:
    path = write_old(tmp_path / "w.bin", b"abc")
    filehash.file_sha256(path)
    filehash.clear_memory_cache()
    with open(path, "r+b") as fh:  # same inode, same size; then the old mtime back
        fh.write(b"xyz")
    os.utime(path, ns=(OLD_NS, OLD_NS))
    assert filehash.file_sha256(path) == ABC_SHA256  # the cached digest: proof the cache was consulted


def test_changed_content_and_mtime_are_read_again(hash_cache: Path, tmp_path: Path, reads: list[Path]) -> None:
    path = write_old(tmp_path / "w.bin", b"abc")
    filehash.file_sha256(path)
    write_old(path, b"xyz", mtime_ns=OLD_NS + 1)
    assert filehash.file_sha256(path) == hashlib.sha256(b"xyz").hexdigest()
    filehash.clear_memory_cache()
    assert filehash.file_sha256(path) == hashlib.sha256(b"xyz").hexdigest()
    assert reads == [path, path]


def test_a_file_replaced_by_another_inode_is_read_again(hash_cache: Path, tmp_path: Path) -> None:
    path = write_old(tmp_path / "w.bin", b"abc")
    filehash.file_sha256(path)
    replacement = write_old(tmp_path / "new.bin", b"xyz")  # same size and mtime, another inode
    os.replace(replacement, path)
    assert filehash.file_sha256(path) == hashlib.sha256(b"xyz").hexdigest()


def test_a_just_modified_file_is_kept_in_memory_but_not_on_disk(hash_cache: Path, tmp_path: Path,
                                                               reads: list[Path]) -> None:
    path = tmp_path / "fresh.bin"
    path.write_bytes(b"abc")  # mtime now: it could change again within the same clock tick
    assert filehash.file_sha256(path) == filehash.file_sha256(path) == ABC_SHA256
    assert reads == [path]
    assert not hash_cache.exists()


def test_a_corrupt_cache_file_is_ignored_and_rewritten(hash_cache: Path, tmp_path: Path) -> None:
    hash_cache.parent.mkdir(parents=True)
    hash_cache.write_text('{"version": 1, "entries": {"/x": {"sha256": 5}}')  # cut short
    assert filehash.file_sha256(write_old(tmp_path / "w.bin", b"abc")) == ABC_SHA256
    assert [e["sha256"] for e in json.loads(hash_cache.read_text())["entries"].values()] == [ABC_SHA256]


def test_the_cache_keeps_only_the_newest_entries(hash_cache: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filehash, "MAX_ENTRIES", 3)
    paths = [write_old(tmp_path / f"{i}.bin", bytes([i])) for i in range(5)]
    for path in paths:
        filehash.file_sha256(path)
    assert sorted(json.loads(hash_cache.read_text())["entries"]) == sorted(str(p.resolve()) for p in paths[2:])


def test_the_cache_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CLIPOPT_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert filehash.user_cache_dir() == tmp_path / "home" / ".cache" / "clipstyler_opt"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert filehash.user_cache_dir() == tmp_path / "xdg" / "clipstyler_opt"
    monkeypatch.setenv("CLIPOPT_CACHE_DIR", str(tmp_path / "mine"))
    assert filehash.hash_cache_path() == tmp_path / "mine" / filehash.CACHE_FILE_NAME


def test_a_directory_has_no_digest(hash_cache: Path, tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        filehash.file_sha256(tmp_path)


CONCURRENT_WRITER = """
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("filehash", sys.argv[1])
filehash = importlib.util.module_from_spec(spec)
spec.loader.exec_module(filehash)
for name in sorted(os.listdir(sys.argv[2])):
    filehash.file_sha256(os.path.join(sys.argv[2], name))
"""


def test_concurrent_writers_never_leave_a_broken_cache_file(hash_cache: Path, tmp_path: Path) -> None:
    folders = []
    for writer in range(4):
        folder = tmp_path / f"files{writer}"
        folder.mkdir()
        for i in range(25):
            write_old(folder / f"{i}.bin", f"{writer}-{i}".encode())
        folders.append(folder)
    env = {**os.environ, "CLIPOPT_CACHE_DIR": str(hash_cache.parent)}
    module = Path(filehash.__file__)
    writers = [subprocess.Popen([sys.executable, "-c", CONCURRENT_WRITER, str(module), str(folder)], env=env)
               for folder in folders]
    snapshots = 0
    while any(w.poll() is None for w in writers):
        if hash_cache.exists():  # whenever it is there, it is whole
            data = json.loads(hash_cache.read_text())
            assert data["version"] == 1 and isinstance(data["entries"], dict)
            snapshots += 1
        time.sleep(0.005)
    assert [w.returncode for w in writers] == [0, 0, 0, 0]
    entries = json.loads(hash_cache.read_text())["entries"]
    for key, entry in entries.items():  # last writer wins, but every entry that is there is right
        assert entry["sha256"] == hashlib.sha256(Path(key).read_bytes()).hexdigest()
    assert len(entries) >= 25 and snapshots > 0
    assert [p.name for p in hash_cache.parent.iterdir()] == [filehash.CACHE_FILE_NAME]  # no temporary files
