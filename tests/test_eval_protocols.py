"""The named measurement protocols against procedures written out here: the paper's patch crops
(count and sizes read back from the pixels), CLIPScore's scale and text, Wang et al.'s SSIM
(luminance, MATLAB-style box downsampling, Gaussian window, 'valid' borders), and the options."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tiny
import torch
import toy
from click.testing import CliRunner
from scipy.signal import correlate2d

from clipstyler_opt.cli import cli
from clipstyler_opt.core.backbone_spec import BackboneSpec
from clipstyler_opt.core.styles import StyleSpec
from clipstyler_opt.evaluate import MetricUnavailable, PatchProtocol, StyleScorer
from clipstyler_opt.evaluate.protocols import wang_ssim
from clipstyler_opt.method.ensemble import Member

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class _Toy224(toy.ToyColourBackbone):
    """The toy colour backbone at CLIP's 224 px input, recording every text batch it encodes;
    "anti-red" embeds opposite to red (a negative cosine for a red image)."""

    input_size = (224, 224)

    def __init__(self) -> None:
        super().__init__()
        self.text_calls: list[list[str]] = []

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        self.text_calls.append(list(texts))
        rows = [(-1.0, 0.0, 0.0) if "anti-red" in text else tuple(toy.ToyColourBackbone.encode_text(self, [text])[0])
                for text in texts]
        return torch.tensor(rows)


def _scorer(protocol: PatchProtocol | None = None, templates: str = "none") -> StyleScorer:
    return StyleScorer(Member(BackboneSpec.parse("toy-colour"), _Toy224()), templates, protocol or PatchProtocol())


def _ramp(height: int, width: int) -> torch.Tensor:
    """Channel 0 = column / (width - 1), channel 1 = row / (height - 1): pixels say where they are."""
    cols = torch.arange(width, dtype=torch.float32) / (width - 1)
    rows = torch.arange(height, dtype=torch.float32) / (height - 1)
    return torch.stack([cols.expand(height, width), rows[:, None].expand(height, width),
                        torch.zeros(height, width)])[None]


# --- the paper's patch protocol ---

def test_paper_crops_are_64_windows_of_64_to_224_px_of_the_512_canvas() -> None:
    """On a 512×512 image the canvas is the image; a crop upsampled to 224 px (bilinear) keeps its
    window's first and last column and row exactly, so each crop's side and place can be read back."""
    protocol = PatchProtocol(name="paper")
    assert protocol.crops == 64
    crops = _scorer(protocol).patches(_ramp(512, 512))
    assert crops.shape == (64, 3, 224, 224)
    sides, places = [], set()
    for crop in crops:
        left, right = (round(float(v) * 511) for v in (crop[0].min(), crop[0].max()))
        top, bottom = (round(float(v) * 511) for v in (crop[1].min(), crop[1].max()))
        assert right - left == bottom - top  # square
        sides.append(right - left + 1)
        places.add((top, left))
        assert min(left, top) >= 0 and max(right, bottom) <= 511
    assert all(64 <= side <= 224 for side in sides)
    assert min(sides) < 90 and max(sides) > 200  # drawn over the whole range, not one size
    assert 120 < sum(sides) / len(sides) < 170  # uniform on 64..224 has mean 144
    assert len(places) > 50
    assert torch.equal(crops, _scorer(protocol).patches(_ramp(512, 512)))  # fixed seed
    assert not torch.equal(crops, _scorer(PatchProtocol(name="paper", seed=1)).patches(_ramp(512, 512)))


def test_paper_crops_are_cut_after_resizing_the_output_to_512() -> None:
    """A 256 px image is doubled first: a crop's side measured in the image's own pixels is half
    the canvas side (within the bicubic edge's 2 px), so at most 112 and at least 32."""
    crops = _scorer(PatchProtocol(name="paper")).patches(_ramp(256, 256))
    sides = [(float(crop[0].max()) - float(crop[0].min())) * 255 * 2 + 1 for crop in crops]
    assert all(64 - 3 <= side <= 224 + 3 for side in sides), sides
    assert max(sides) > 190


def test_the_train_protocol_is_unchanged_and_records_what_it_is() -> None:
    protocol = PatchProtocol()
    assert (protocol.name, protocol.crops, protocol.crop_size) == ("train", 64, 128)
    assert PatchProtocol(name="paper").describe()["comparable_with"].startswith("CLIPstyler (Kwon & Ye 2022) Table 2")
    with pytest.raises(ValueError, match="unknown patch protocol 'test'"):
        PatchProtocol(name="test")


# --- CLIPScore (Hessel et al. 2021) ---

def _solid(rgb: tuple[float, float, float], size: int = 32) -> torch.Tensor:
    return torch.tensor(rgb).view(1, 3, 1, 1).expand(1, 3, size, size).clone()


def test_clipscore_is_2_5_times_the_clipped_cosine_with_one_untemplated_caption() -> None:
    scorer = _scorer(templates="imagenet")
    grey = _solid((0.5, 0.5, 0.5))
    scores = scorer.score(_solid((0.8, 0.2, 0.2)), grey, StyleSpec.parse("red"), "a Photo")
    cosine = 0.8 / math.sqrt(0.72)  # E_I = (0.8, 0.2, 0.2), E_T("A photo depicts red") = (1, 0, 0)
    assert scores["clipscore"] == pytest.approx(2.5 * cosine, abs=1e-6)
    assert ["A photo depicts red"] in scorer.member.backbone.text_calls  # type: ignore[attr-defined]
    templated = [call for call in scorer.member.backbone.text_calls if len(call) > 1]  # type: ignore[attr-defined]
    assert templated and not any("A photo depicts" in text for call in templated for text in call)
    negative = _scorer().score(_solid((0.8, 0.2, 0.2)), grey, StyleSpec.parse("anti-red"), "a Photo")
    assert negative["clip_score"] == pytest.approx(-cosine, abs=1e-6)  # the raw cosine stays beside it
    assert negative["clipscore"] == 0.0


# --- SSIM, Wang et al.'s reference protocol, written out from the published procedure ---

def _matlab_gaussian(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """fspecial('gaussian', 11, 1.5)."""
    half = (size - 1) / 2
    y, x = np.mgrid[-half:half + 1, -half:half + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    return h / h.sum()


def _matlab_downsample(image: np.ndarray) -> np.ndarray:
    """f = max(1, round(min(M, N)/256)); imfilter(img, ones(f)/f², 'symmetric', 'same'); img(1:f:end, 1:f:end).
    MATLAB's imfilter centres an f-tap kernel on tap floor((f + 1)/2) (1-based)."""
    f = max(1, math.floor(min(image.shape) / 256 + 0.5))
    if f == 1:
        return image
    centre = (f + 1) // 2
    padded = np.pad(image, ((centre - 1, f - centre), (centre - 1, f - centre)), mode="symmetric")
    out = np.lib.stride_tricks.sliding_window_view(padded, (f, f)).mean(axis=(-2, -1))
    assert out.shape == image.shape
    return out[::f, ::f]


def _wang_by_hand(x_rgb: np.ndarray, y_rgb: np.ndarray) -> float:
    def gray(rgb: np.ndarray) -> np.ndarray:
        return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]

    img1, img2 = _matlab_downsample(gray(x_rgb)), _matlab_downsample(gray(y_rgb))
    window = _matlab_gaussian()
    c1, c2 = (0.01 * 1) ** 2, (0.03 * 1) ** 2

    def filt(a: np.ndarray) -> np.ndarray:
        return correlate2d(a, window, mode="valid")

    mu1, mu2 = filt(img1), filt(img2)
    s1, s2, s12 = filt(img1 * img1) - mu1 ** 2, filt(img2 * img2) - mu2 ** 2, filt(img1 * img2) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) * (s1 + s2 + c2))
    return float(ssim_map.mean())


def _pair(height: int, width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, height // 16, width // 16, generator=g),
                                           size=(height, width), mode="bilinear", align_corners=False)
    noisy = (base + 0.15 * torch.randn(1, 3, height, width, generator=g)).clamp(0, 1)
    return base, noisy


@pytest.mark.parametrize("height, width", [(48, 64), (400, 420), (660, 640)])  # f = 1, 2 and 3
def test_wang_ssim_follows_the_published_procedure(height: int, width: int) -> None:
    output, content = _pair(height, width, seed=height)
    by_hand = _wang_by_hand(output[0].double().numpy(), content[0].double().numpy())
    assert wang_ssim(output, content) == pytest.approx(by_hand, abs=1e-9)


def test_wang_ssim_of_an_image_too_small_for_the_window_is_unavailable() -> None:
    image = torch.rand(1, 3, 10, 40)
    with pytest.raises(MetricUnavailable, match="10 px a side after Wang's downsampling"):
        wang_ssim(image, image)


# --- the options and eval.json ---

def _invoke(*args: Any) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _flags(paths: dict[str, Path]) -> list[str]:
    return ["--scorer", f"{tiny.TINY_CLIP_NAME}/openai:file={paths['clip_checkpoint']}", "--clip-model-config",
            str(paths["clip_model_config"]), "--vgg-checkpoint", str(paths["vgg_checkpoint"]), "--offline",
            "--device", "cpu", "--patch-crops", "4", "--content", str(EXAMPLES / "chelsea.png"), "--prompt", "red"]


def test_protocols_are_chosen_by_name_and_recorded_in_eval_json(tiny_paths: dict[str, Path], tmp_path: Path) -> None:
    image = EXAMPLES / "coffee.png"
    result = _invoke("eval", image, *_flags(tiny_paths), "--patch-protocol", "paper", "--ssim-protocol", "wang",
                     "--json", tmp_path / "e.json")
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "e.json").read_text())
    protocols = document["protocols"]
    assert protocols["patch_clip_score"]["name"] == "paper" and protocols["patch_clip_score"]["crops"] == 4
    assert protocols["ssim"]["name"] == "wang" and protocols["clipscore"]["weight"] == 2.5
    [row] = document["rows"]
    assert 0.0 <= row["metrics"]["clipscore"] <= 2.5 and row["metrics"]["ssim"] is not None
    for args, message in ((("--patch-protocol", "tile"), "--patch-protocol: unknown protocol 'tile'"),
                          (("--ssim-protocol", "msssim"), "--ssim-protocol: unknown protocol 'msssim'"),
                          (("--patch-protocol", "paper", "--patch-size", "96"), "--patch-size applies to the train")):
        result = _invoke("eval", image, *_flags(tiny_paths), *args, "--json", tmp_path / "bad.json")
        assert result.exit_code == 2 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "bad.json").exists()
