"""The Python API: reuse of backbones, fresh U-Nets, seeds, precision, non-finite steps, alpha."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import toy
from PIL import Image

from clipstyler_opt import Progress, StyleConfig, Stylizer, stylize
from clipstyler_opt.core.errors import ConfigError, OptimisationError
from clipstyler_opt.method.precision import cpu_has_native_bf16
from clipstyler_opt.models import register_backbone


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


def test_same_seed_gives_identical_output_and_other_seed_differs(tiny_config: StyleConfig, photo: Path) -> None:
    a = Stylizer(tiny_config).stylize(photo, "starry night")
    b = Stylizer(tiny_config).stylize(photo, "starry night")
    c = Stylizer(tiny_config.replace(seed=1)).stylize(photo, "starry night")
    assert np.array_equal(pixels(a.image), pixels(b.image))
    assert a.history == b.history
    assert not np.array_equal(pixels(a.image), pixels(c.image))
    assert a.seed == 0 and c.seed == 1


def test_stylizer_reuses_backbones_and_trains_a_fresh_unet_per_call(tiny_config: StyleConfig, photo: Path) -> None:
    stylizer = Stylizer(tiny_config)
    backbone, vgg = stylizer.members[0].backbone, stylizer.vgg
    first = stylizer.stylize(photo, "starry night")
    stylizer.stylize(photo, "ukiyo-e woodblock print")
    again = stylizer.stylize(photo, "starry night")
    assert stylizer.members[0].backbone is backbone and stylizer.vgg is vgg
    assert len(stylizer.members[0].texts) == 3  # "a Photo" and the two prompts, each encoded once
    # Weights carried over between calls would make the third call differ from the first.
    assert np.array_equal(pixels(first.image), pixels(again.image))
    assert first.history == again.history


def test_result_records_losses_history_timings_and_provenance(tiny_config: StyleConfig, photo: Path) -> None:
    events: list[Progress] = []
    result = Stylizer(tiny_config).stylize(photo, "starry night", progress=events.append)
    assert [e.step for e in events] == [1, 2, 3] and events[-1].total == 3
    assert {"total", "patch", "dir", "content", "tv"} <= set(result.losses)  # and any term added later
    assert len(result.history) == 3
    assert result.device == "cpu" and result.precision == "fp32"
    assert result.timings["total_s"] >= result.timings["optimise_s"] > 0
    meta = result.metadata
    assert meta["prompt"] == "starry night" and meta["seed"] == 0
    assert meta["settings"]["lambda_patch"] == tiny_config.lambda_patch
    assert meta["backbones"][0]["weights_origin"] == "explicit"
    assert len(meta["backbones"][0]["weights_sha256"]) == 64 and meta["history"] == result.history
    assert len(meta["input"]["sha256"]) == 64


def test_one_shot_stylize_accepts_overrides(tiny_paths: dict[str, Path], photo: Path) -> None:
    result = stylize(Image.open(photo), "starry night", clip_model="clipopt-tiny-test", size=48, steps=2,
                     crops=2, crop_size=16, device="cpu", precision="fp32", **tiny_paths)
    assert max(result.image.size) == 48


def test_backbone_settings_cannot_change_per_call(tiny_config: StyleConfig, photo: Path) -> None:
    with pytest.raises(ConfigError, match="create a new Stylizer"):
        Stylizer(tiny_config).stylize(photo, "x", clip_model="ViT-B-32")


def test_unsupported_precision_falls_back_and_says_so(tiny_config: StyleConfig, photo: Path) -> None:
    result = Stylizer(tiny_config.replace(precision="fp16")).stylize(photo, "starry night")
    native_fp16 = bool(getattr(torch.ops.mkldnn, "_is_mkldnn_fp16_supported", lambda: False)())
    if native_fp16:
        assert result.precision == "fp16"
    else:
        assert result.precision == "fp32"
        assert any("fp16 requested" in w for w in result.warnings)
        assert result.metadata["requested_precision"] == "fp16"


def test_auto_precision_on_cpu_is_bf16_only_with_native_support(tiny_config: StyleConfig, photo: Path) -> None:
    result = Stylizer(tiny_config.replace(precision="auto")).stylize(photo, "starry night")
    assert result.precision == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert np.isfinite(np.asarray(result.image, dtype=np.float64)).all()


class _FlakyBackbone(toy.ToyColourBackbone):
    """Returns NaN embeddings on chosen calls: the engine must skip those steps, not save NaNs."""

    def __init__(self, bad_calls: set[int]) -> None:
        super().__init__()
        self.bad_calls = bad_calls

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        out = super().encode_image(pixels)
        return out * float("nan") if self.image_calls in self.bad_calls else out


def test_non_finite_steps_are_skipped_and_reported(tiny_config: StyleConfig, photo: Path) -> None:
    # call 1 is the content reference; calls 2..6 are steps 1..5; call 7 is the final evaluation
    register_backbone("flaky", lambda spec, context, device: _FlakyBackbone({3, 5}))
    config = toy.toy_config(tiny_config, backbone="flaky", steps=5)
    events: list[Progress] = []
    result = Stylizer(config).stylize(photo, "red", progress=events.append)
    assert result.skipped_steps == [2, 4]
    assert [e.skipped for e in events] == [False, True, False, True, False]
    assert np.isfinite(np.asarray(result.image, dtype=np.float64)).all()


def test_fp16_gradient_scaling_path_skips_non_finite_steps(tiny_config: StyleConfig, photo: Path) -> None:
    """The fp16 + GradScaler loop, forced on the CPU (autocast supports fp16 there, slowly)."""
    from clipstyler_opt.method.precision import Runtime

    register_backbone("flaky-fp16", lambda spec, context, device: _FlakyBackbone({3}))
    stylizer = Stylizer(toy.toy_config(tiny_config, backbone="flaky-fp16", steps=4))
    stylizer.runtime = Runtime(torch.device("cpu"), "fp16")
    result = stylizer.stylize(photo, "red")
    assert result.precision == "fp16"
    assert 2 in result.skipped_steps
    assert np.isfinite(np.asarray(result.image, dtype=np.float64)).all()


def test_persistently_non_finite_loss_is_an_optimisation_error(tiny_config: StyleConfig, photo: Path) -> None:
    register_backbone("broken", lambda spec, context, device: _FlakyBackbone(set(range(2, 100))))
    config = toy.toy_config(tiny_config, backbone="broken", steps=30)
    with pytest.raises(OptimisationError, match="non-finite"):
        Stylizer(config).stylize(photo, "red")


class _NaNGradientBackbone(toy.ToyColourBackbone):
    """Finite embeddings whose gradient is NaN: the loss stays finite, the update never can."""

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        out = super().encode_image(pixels)
        if out.requires_grad:
            out.register_hook(lambda grad: grad * float("nan"))
        return out


def test_a_gradient_that_stays_non_finite_ends_the_run(tiny_config: StyleConfig, photo: Path) -> None:
    register_backbone("nan-gradient", lambda spec, context, device: _NaNGradientBackbone())
    config = toy.toy_config(tiny_config, backbone="nan-gradient", steps=30)
    events: list[Progress] = []
    with pytest.raises(OptimisationError, match="10 steps in a row \\(last at step 10\\)"):
        Stylizer(config).stylize(photo, "red", progress=events.append)
    assert all(math.isfinite(e.losses["total"]) for e in events)  # the loss itself stayed finite


def test_alpha_is_reattached(tiny_config: StyleConfig) -> None:
    rgba = Image.new("RGBA", (40, 32), (200, 30, 30, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))
    result = Stylizer(tiny_config.replace(size=40, crop_size=16)).stylize(rgba, "starry night")
    assert result.image.mode == "RGBA" and result.image.size == (40, 32)
    assert result.image.getpixel((0, 0))[3] < 128 and result.image.getpixel((20, 20))[3] == 255


def test_contrast_is_opt_in_and_stretches_to_full_range(tiny_config: StyleConfig, photo: Path) -> None:
    plain = Stylizer(tiny_config).stylize(photo, "starry night").image
    stretched = Stylizer(tiny_config.replace(contrast=True)).stylize(photo, "starry night").image
    lo, hi = np.asarray(stretched).min(), np.asarray(stretched).max()
    assert (lo, hi) == (0, 255)
    assert not np.array_equal(np.asarray(plain), np.asarray(stretched))


def test_learning_rate_halves_every_decay_period(tiny_config: StyleConfig, photo: Path) -> None:
    events: list[Progress] = []
    Stylizer(tiny_config.replace(steps=5, lr_decay_every=2)).stylize(photo, "x", progress=events.append)
    lr = tiny_config.lr
    assert [e.lr for e in events] == pytest.approx([lr, lr, lr / 2, lr / 2, lr / 4])


def test_frames_are_offered_every_n_steps(tiny_config: StyleConfig, photo: Path) -> None:
    frames: list[int] = []
    Stylizer(tiny_config.replace(steps=4, save_every=2)).stylize(photo, "x", on_frame=lambda s, im: frames.append(s))
    assert frames == [2, 4]
