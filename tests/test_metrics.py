"""Each evaluation metric against values computed by hand from its definition, the scorer rule,
the bootstrap intervals and LPIPS's availability."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import toy

from clipstyler_opt.core.backbone_spec import BackboneSpec
from clipstyler_opt.core.errors import ConfigError, InputImageError, WeightsError
from clipstyler_opt.core.styles import StyleSpec
from clipstyler_opt.evaluate import MetricUnavailable, PatchProtocol, StyleScorer, summarise
from clipstyler_opt.evaluate.content import edge_correlation, pearson, ssim, vgg_content_distance
from clipstyler_opt.evaluate.gram import GRAM_LAYERS, gram_distance, gram_matrix, style_network, weighted_gram_distance
from clipstyler_opt.evaluate.perceptual import load_perceptual
from clipstyler_opt.evaluate.scorer import DEFAULT_SCORERS, choose_scorer, same_backbone, was_optimiser
from clipstyler_opt.evaluate.style import clip_score, directional_similarity
from clipstyler_opt.evaluate.targets import Overrides, collect_targets
from clipstyler_opt.method.ensemble import Member
from clipstyler_opt.models.vgg import load_vgg_features

LPIPS_INSTALLED = importlib.util.find_spec("lpips") is not None
SQRT3 = math.sqrt(3.0)


def solid(rgb: tuple[float, float, float], size: int = 32) -> torch.Tensor:
    return torch.tensor(rgb).view(1, 3, 1, 1).expand(1, 3, size, size).clone()


def toy_scorer(crops: int = 8) -> StyleScorer:
    """The toy backbone embeds an image as its mean colour and "red" as (1, 0, 0), anything
    without a colour word as (1, 1, 1): a linear embedding whose scores can be worked out by hand."""
    return StyleScorer(Member(BackboneSpec.parse("toy-colour"), toy.ToyColourBackbone()), "none",
                       PatchProtocol(crops=crops, crop_size=16))


# --- style ---

def test_clip_score_matches_a_hand_computation_with_a_linear_embedding() -> None:
    scores = toy_scorer().score(solid((0.8, 0.2, 0.2)), solid((0.5, 0.5, 0.5)), StyleSpec.parse("red"), "a Photo")
    # E_I = (0.8, 0.2, 0.2), T(red) = (1, 0, 0): cos = 0.8 / sqrt(0.64 + 0.04 + 0.04)
    assert scores["clip_score"] == pytest.approx(0.8 / math.sqrt(0.72), abs=1e-6)
    # every crop of a flat image has the same mean colour, so the patch score is the same number
    assert scores["patch_clip_score"] == pytest.approx(0.8 / math.sqrt(0.72), abs=1e-6)


def test_clip_score_of_a_weighted_prompt_uses_the_normalised_mix() -> None:
    # T = n(0.5·(1,0,0) + 0.5·(0,0,1)) = (1, 0, 1)/√2, the direction of a magenta image: cos = 1;
    # a red image: cos((1,0,0), (1,0,1)/√2) = 1/√2
    scorer, grey = toy_scorer(), solid((0.5, 0.5, 0.5))
    mix = StyleSpec.parse("red:0.5 | blue:0.5")
    assert scorer.score(solid((1.0, 0.0, 1.0)), grey, mix, "a Photo")["clip_score"] == pytest.approx(1.0, abs=1e-6)
    assert scorer.score(solid((1.0, 0.0, 0.0)), grey, mix, "a Photo")["clip_score"] == pytest.approx(
        1 / math.sqrt(2), abs=1e-6)


def test_directional_similarity_is_one_when_the_image_change_equals_the_text_change() -> None:
    # grey -> red in image space: n((1,0,0)) − n((1,1,1)); "a Photo" -> "red" in text space:
    # (1,0,0) − n((1,1,1)). Same vector, so the cosine is 1.
    scores = toy_scorer().score(solid((1.0, 0.0, 0.0)), solid((0.5, 0.5, 0.5)), StyleSpec.parse("red"), "a Photo")
    assert scores["directional_similarity"] == pytest.approx(1.0, abs=1e-6)


def test_directional_similarity_of_another_change_by_hand() -> None:
    # grey -> blue against "a Photo" -> "red": cos(u, v) with u = (0,0,1) − g, v = (1,0,0) − g and
    # g = (1,1,1)/√3, evaluated from the definition with numpy
    g = np.ones(3) / SQRT3
    u, v = np.array([0.0, 0.0, 1.0]) - g, np.array([1.0, 0.0, 0.0]) - g
    expected = float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
    scores = toy_scorer().score(solid((0.0, 0.0, 1.0)), solid((0.3, 0.3, 0.3)), StyleSpec.parse("red"), "a Photo")
    assert scores["directional_similarity"] == pytest.approx(expected, abs=1e-6)
    assert expected < 0.5


def test_pure_style_functions_by_hand() -> None:
    features = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    assert clip_score(features, torch.tensor([0.0, 5.0])).tolist() == pytest.approx([0.8, 1.0])
    # f = (3, 4): n(f) − e_c = (0.6, −0.2) -> n = (3, −1)/√10; ΔT = (1, 0): cos = 3/√10
    similarity = directional_similarity(features[:1], torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0]))
    assert similarity.item() == pytest.approx(3 / math.sqrt(10), abs=1e-6)


def test_patch_score_is_the_same_for_the_same_image_and_follows_its_crops() -> None:
    torch.manual_seed(123)
    image = torch.zeros(1, 3, 64, 64)
    image[:, 0, :, :32] = 1.0  # left half red
    image[:, 2, :, 32:] = 1.0  # right half blue
    scorer = toy_scorer(crops=16)
    first = scorer.score(image, solid((0.5, 0.5, 0.5), 64), StyleSpec.parse("red"), "a Photo")["patch_clip_score"]
    torch.rand(5)  # the global RNG moves on; the protocol's crops must not
    second = scorer.score(image, solid((0.5, 0.5, 0.5), 64), StyleSpec.parse("red"), "a Photo")["patch_clip_score"]
    assert first == second
    # by hand from the protocol's own crops: each crop's mean colour against (1, 0, 0)
    crops = scorer.patches(image)
    colours = crops.mean(dim=(2, 3)).double().numpy()
    by_hand = float(np.mean(colours[:, 0] / np.linalg.norm(colours, axis=1)))
    assert first == pytest.approx(by_hand, abs=1e-6)
    assert crops.shape == (16, 3, 16, 16) and 0.0 < first < 1.0


def test_patch_crops_are_clipped_to_the_short_side() -> None:
    assert PatchProtocol(crop_size=128).side(40, 300) == 40
    assert PatchProtocol(crop_size=128).side(512, 384) == 128


def test_style_metrics_without_a_style_text_are_unavailable() -> None:
    with pytest.raises(MetricUnavailable, match="style images only"):
        toy_scorer().score(solid((1.0, 0.0, 0.0)), solid((0.5, 0.5, 0.5)), None, "a Photo")


# --- content ---

def test_ssim_of_an_image_with_itself_is_one_and_with_its_negative_is_low() -> None:
    torch.manual_seed(0)
    image = torch.rand(1, 3, 48, 40)
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-5)
    assert ssim(image, 1.0 - image) < 0.1


def test_pearson_matches_numpy() -> None:
    a, b = torch.tensor([1.0, 2.0, 3.0, 7.0]), torch.tensor([2.0, 4.0, 7.0, 1.0])
    assert pearson(a, b) == pytest.approx(float(np.corrcoef(a.numpy(), b.numpy())[0, 1]), abs=1e-9)
    with pytest.raises(MetricUnavailable, match="flat"):
        pearson(a, torch.ones(4))


def test_edge_correlation_of_itself_is_one_and_lower_for_shifted_or_unrelated_patterns() -> None:
    stripes = torch.zeros(1, 3, 32, 32)
    stripes[..., ::8, :] = 1.0
    shifted = torch.roll(stripes, shifts=4, dims=-2)
    torch.manual_seed(1)
    noise = torch.rand(1, 3, 32, 32)
    assert edge_correlation(stripes, stripes) == pytest.approx(1.0, abs=1e-9)
    assert edge_correlation(stripes, shifted) < 0.5
    assert edge_correlation(stripes, noise) < 0.5
    with pytest.raises(MetricUnavailable):
        edge_correlation(stripes, torch.full_like(stripes, 0.5))


def test_vgg_content_distance_is_the_mse_of_the_taps(tiny_paths: dict[str, Path]) -> None:
    vgg = load_vgg_features(tiny_paths["vgg_checkpoint"])
    torch.manual_seed(2)
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    expected = sum(float(((x - y) ** 2).mean()) for x, y in zip(vgg(a), vgg(b), strict=True))
    assert vgg_content_distance(vgg, a, a) == 0.0
    assert vgg_content_distance(vgg, a, b) == pytest.approx(expected, rel=1e-5)


# --- Gram ---

def test_gram_matrix_and_distance_by_hand() -> None:
    # layer 1: F_o = [[1, 1]] -> G = 2/(1·1·2) = 1; layer 2: F_o = [[2, 0]] -> G = 4/2 = 2; style all 0
    output = [torch.tensor([[[[1.0, 1.0]]]]), torch.tensor([[[[2.0, 0.0]]]])]
    style = [torch.zeros(1, 1, 1, 2), torch.zeros(1, 1, 1, 2)]
    assert gram_matrix(output[0]).item() == pytest.approx(1.0)
    assert gram_distance(output, style) == pytest.approx((1.0 + 4.0) / 2)
    assert gram_distance(output, output) == 0.0
    # two channels: F = [[1, 0], [0, 1]] over 2 positions -> G = I/(2·2) = diag(0.25, 0.25)
    assert gram_matrix(torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])).squeeze(0).tolist() == [[0.25, 0.0], [0.0, 0.25]]
    # weights 1 and 3 for distances 2.5 and 0: (1·2.5 + 3·0)/4
    assert weighted_gram_distance(output, [(style, 1.0), (output, -3.0)]) == pytest.approx(2.5 / 4)


def test_style_network_taps_the_same_weights_as_a_network_loaded_for_those_layers(tiny_paths: dict[str, Path]
                                                                                    ) -> None:
    path = tiny_paths["vgg_checkpoint"]
    shared = style_network(load_vgg_features(path))
    separate = load_vgg_features(path, layers=GRAM_LAYERS)
    torch.manual_seed(3)
    image = torch.rand(1, 3, 32, 32)
    for a, b in zip(shared(image), separate(image), strict=True):
        assert torch.equal(a, b)


# --- statistics ---

def test_summary_groups_by_prompt_and_cell_and_leaves_out_missing_values() -> None:
    rows = [{"prompt": "a", "cell": "c1", "metrics": {"ssim": 0.2, "lpips": None}},
            {"prompt": "a", "cell": "c2", "metrics": {"ssim": 0.4, "lpips": None}},
            {"prompt": "b", "cell": "c1", "metrics": {"ssim": 0.9, "lpips": None}}]
    summary = summarise(rows, ("ssim", "lpips"))
    assert summary["overall"]["ssim"]["mean"] == pytest.approx(0.5) and "lpips" not in summary["overall"]
    assert summary["per_prompt"]["a"]["ssim"]["mean"] == pytest.approx(0.3)
    assert summary["per_prompt"]["b"]["ssim"]["n"] == 1
    assert summary["per_cell"]["c1"]["ssim"]["mean"] == pytest.approx(0.55)
    assert "per_cell" not in summarise([dict(r, cell="only") for r in rows], ("ssim",))


# --- the scorer rule ---

def test_default_scorer_differs_from_the_optimisers() -> None:
    b16 = {"model": "ViT-B-16", "pretrained": "openai"}
    b32 = {"model": "ViT-B-32-quickgelu", "pretrained": "openai"}
    assert str(choose_scorer(None, [])) == DEFAULT_SCORERS[0] == "ViT-B-16/openai"
    assert str(choose_scorer(None, [[b32]])) == "ViT-B-16/openai"
    assert str(choose_scorer(None, [[b16]])) == "ViT-B-32-quickgelu/openai"
    assert str(choose_scorer(None, [[b32], [b16], [b16]])) == "ViT-B-32-quickgelu/openai"  # optimised fewer
    assert str(choose_scorer(None, [[b16, b32]])) == "ViT-B-16/openai"  # both used: was_optimiser flags it
    assert str(choose_scorer("ViT-L-14/openai", [[b16]])) == "ViT-L-14/openai"


def test_same_backbone_by_weights_digest_or_by_name() -> None:
    plain = {"model": "ViT-B-32", "pretrained": "openai"}
    assert same_backbone(plain, {"model": "ViT-B-32-quickgelu", "pretrained": "OpenAI"})  # same weights
    assert not same_backbone(plain, {"model": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"})
    assert same_backbone({"weights_sha256": "ab", "model": "x"}, {"weights_sha256": "ab", "model": "y"})
    assert not same_backbone({"weights_sha256": "ab", **plain}, {"weights_sha256": "cd", **plain})
    assert same_backbone({"spec": "toy-colour"}, {"spec": "toy-colour", "family": "toy-colour"})
    assert was_optimiser(plain, None) is None
    assert was_optimiser(plain, [{"spec": "toy-colour"}]) is False


# --- LPIPS ---

def test_lpips_without_the_package_is_unavailable_with_the_reason(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "lpips", None)  # what `import lpips` meets when it is not installed
    metric = load_perceptual(None, None, True, torch.device("cpu"))
    assert metric.model is None and "not installed" in (metric.reason or "")
    with pytest.raises(MetricUnavailable, match="not installed"):
        metric(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))
    with pytest.raises(ConfigError, match="lpips package"):
        load_perceptual(tmp_path / "alexnet.pth", None, True, torch.device("cpu"))


@pytest.fixture(scope="module")
def random_alexnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torchvision

    torch.manual_seed(4)
    path = tmp_path_factory.mktemp("alexnet") / "alexnet-random.pth"
    features = torchvision.models.alexnet(weights=None).features
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return path


@pytest.mark.skipif(not LPIPS_INSTALLED, reason="the optional lpips package is not installed")
def test_lpips_loads_alexnet_from_a_file_and_is_zero_for_identical_images(random_alexnet: Path) -> None:
    import torchvision

    metric = load_perceptual(random_alexnet, None, True, torch.device("cpu"))
    assert metric.model is not None and metric.provenance["weights_sha256"]
    torch.manual_seed(5)
    a, b = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    assert metric(a, a) == pytest.approx(0.0, abs=1e-7)
    assert metric(a, b) > 0.0
    # the trunk is torchvision's AlexNet with the file's weights, loaded by torchvision itself
    reference = torchvision.models.alexnet(weights=None).features
    reference.load_state_dict({k.removeprefix("features."): v for k, v in torch.load(random_alexnet).items()})
    trunk = metric.model.net
    with torch.no_grad():
        assert torch.allclose(trunk(a).relu5, reference[:12](a), atol=1e-6)
    with pytest.raises(MetricUnavailable, match="smaller"):
        metric(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))


@pytest.mark.skipif(not LPIPS_INSTALLED, reason="the optional lpips package is not installed")
def test_lpips_weights_missing_offline_is_a_reason_and_a_bad_explicit_file_an_error(tmp_path: Path) -> None:
    metric = load_perceptual(None, None, True, torch.device("cpu"))
    assert metric.model is None and "not found offline" in (metric.reason or "")
    bad = tmp_path / "alexnet.pth"
    bad.write_text("not weights")
    with pytest.raises(WeightsError, match=r"alexnet\.pth"):
        load_perceptual(bad, None, True, torch.device("cpu"))
    wrong = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(2, 3, 3, 3)}, wrong)
    with pytest.raises(WeightsError, match=r"features\.0\.weight has shape"):
        load_perceptual(wrong, None, True, torch.device("cpu"))


# --- what to evaluate ---

def test_targets_come_from_the_sidecar_and_missing_inputs_are_one_line_errors(tmp_path: Path, photo: Path) -> None:
    output = tmp_path / "out.png"
    output.write_bytes(photo.read_bytes())
    sidecar = {"prompt": "red", "input": {"source": str(photo), "sha256": "0" * 64},
               "settings": {"source_text": "a picture"}, "backbones": [{"model": "ViT-B-16", "pretrained": "openai"}],
               "style_images": [{"path": "gone.png", "weight": 1.0}]}
    (tmp_path / "out.png.json").write_text(json.dumps(sidecar))
    [target], notes = collect_targets([output])
    assert (target.content, target.prompt, target.source_text) == (photo, "red", "a picture")
    assert target.optimisers == ({"model": "ViT-B-16", "pretrained": "openai"},) and not notes
    assert target.style_images == () and "gone.png" in (target.style_images_missing or "")
    [override], _ = collect_targets([output], Overrides(prompt="blue"))
    assert override.prompt == "blue" and override.style == StyleSpec.parse("blue")
    sidecar["input"]["source"] = str(tmp_path / "moved.png")
    (tmp_path / "out.png.json").write_text(json.dumps(sidecar))
    with pytest.raises(InputImageError, match=r"moved\.png is not found; pass --content"):
        collect_targets([output])
    bare = tmp_path / "bare.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(bare)
    with pytest.raises(InputImageError, match="pass --content and --prompt"):
        collect_targets([bare])
    [given], _ = collect_targets([bare], Overrides(content=photo, prompt="red"))
    assert given.optimisers is None
    with pytest.raises(ConfigError, match=r"manifest\.jsonl"):
        collect_targets([tmp_path])
    with pytest.raises(ConfigError, match="given twice"):
        collect_targets([output, tmp_path / "." / "out.png"], Overrides(content=photo))


def test_folder_outputs_whose_content_is_gone_are_left_out_and_listed(tmp_path: Path) -> None:
    from test_report import make_result_folder

    root = make_result_folder(tmp_path, evaluation=False)  # 2 photos x 2 prompts x 2 cells
    (tmp_path / "photos" / "red.png").unlink()
    targets, notes = collect_targets([root])
    assert len(targets) == 4 and {t.content.name for t in targets} == {"blue.png"}
    assert sum("red.png is not found" in note and "left out" in note for note in notes) == 4
    assert all(t.root == root and t.label.endswith("/blue.png") and not Path(t.label).is_absolute() for t in targets)
    assert {t.cell for t in targets} == {"lambda_content=300", "lambda_content=50"}
    (tmp_path / "photos" / "blue.png").unlink()
    with pytest.raises(InputImageError, match="no output can be evaluated"):
        collect_targets([root])
