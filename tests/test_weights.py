"""Weight resolution: explicit file -> caches -> download -> one-line error; safe loading only."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import pytest
import torch

import tiny
from clipstyler_opt import StyleConfig, Stylizer
from clipstyler_opt.backbones.checkpoints import load_state_dict
from clipstyler_opt.backbones.vgg import LAYER_NAMES, load_vgg_features
from clipstyler_opt.backbones.weights import (VGG19_FILENAME, resolve_clip_weights, resolve_vgg_weights)
from clipstyler_opt.errors import WeightsError

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
    with pytest.raises(WeightsError, match="--vgg-checkpoint .*no such file"):
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
    with pytest.raises(WeightsError, match="features.0.bias|features.2.weight"):
        load_vgg_features(path)


def test_tiny_vgg_loads_through_the_real_path_and_taps_two_layers(tiny_paths: dict[str, Path]) -> None:
    vgg = load_vgg_features(tiny_paths["vgg_checkpoint"])
    taps = vgg(torch.rand(1, 3, 64, 48))
    assert [t.shape[1:] for t in taps] == [(32, 8, 6), (32, 4, 3)]
    assert not any(p.requires_grad for p in vgg.parameters())


def test_clip_backbone_reads_preprocessing_from_open_clip(tiny_config: StyleConfig) -> None:
    backbone = Stylizer(tiny_config).backbone
    assert backbone.input_size == (tiny.TINY_CLIP_CONFIG["vision_cfg"]["image_size"],) * 2
    assert backbone.interpolation == "bicubic"
    assert not any(p.requires_grad for p in backbone.parameters())  # type: ignore[attr-defined]


def test_plain_vit_b_32_with_openai_tag_is_built_with_quickgelu(tmp_path: Path) -> None:
    """The openai weights were trained with QuickGELU; plain ViT-B-32 would silently use GELU."""
    import open_clip
    from safetensors.torch import save_file

    from clipstyler_opt.backbones.clip import create_open_clip

    model = open_clip.create_model("ViT-B-32")
    checkpoint = tmp_path / "vit-b-32.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(checkpoint))
    del model
    config = StyleConfig(clip_model="ViT-B-32", clip_pretrained="openai", clip_checkpoint=checkpoint)
    backbone = create_open_clip(config, torch.device("cpu"))
    activation = backbone.model.visual.transformer.resblocks[0].mlp.gelu
    assert type(activation).__name__ == "QuickGELU"
    assert backbone.provenance["quick_gelu"] is True
    assert backbone.input_size == (224, 224)
    assert torch.allclose(backbone.mean.flatten(), torch.tensor(open_clip.OPENAI_DATASET_MEAN))
