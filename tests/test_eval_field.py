"""The field's standard metrics with random weights of the real architectures: FID against
pytorch-fid called directly, ArtFID against the art-fid package's `compute_art_fid` called on the
same folders, DINO against timm called directly, the CLIP style similarity by hand, set-level values
per cell with n on each side, and null-with-reason whenever a value cannot be had."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import tiny
import torch
import torch.nn.functional as F
import toy
from click.testing import CliRunner
from PIL import Image, ImageFilter

from clipstyler_opt.cli import cli
from clipstyler_opt.core.errors import WeightsError
from clipstyler_opt.core.styles import StyleImage
from clipstyler_opt.evaluate import setlevel
from clipstyler_opt.evaluate.dino import DinoSimilarity, load_dino
from clipstyler_opt.evaluate.field import StyleEmbeddings
from clipstyler_opt.evaluate.inception import FeatureNetwork, load_art_inception
from clipstyler_opt.evaluate.names import MetricUnavailable
from clipstyler_opt.evaluate.registry import metric_named
from clipstyler_opt.evaluate.setlevel import SET_METRICS, frechet_distance, set_metric_values, set_summary

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _invoke(*args: Any) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random-init weights files of the real architectures: timm's DINO ViT-S/16, an Inception-v3
    with 1008 classes (the FID Inception's parameters, as pytorch-fid stores them), art-fid's own
    two-headed Inception3 (as the art-trained file is laid out), and torchvision's AlexNet (LPIPS).
    The Inceptions are He-initialised: torch's default initialisation gives features of about 1e-8,
    which would hide any preprocessing bug."""
    import timm
    import torchvision
    from art_fid.inception import Inception3
    from torchvision.models import inception_v3

    folder = tmp_path_factory.mktemp("random-weights")
    torch.manual_seed(0)
    files = {"dino": folder / "dino.pth", "fid": folder / "fid.pth", "art": folder / "art.pth"}
    torch.save(timm.create_model("vit_small_patch16_224.dino", pretrained=False, num_classes=0).state_dict(),
               files["dino"])
    network = inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    for module in network.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(network.state_dict(), files["fid"])
    art = Inception3(init_weights=False)
    for module in art.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(art.state_dict(), files["art"])
    files["alexnet"] = folder / "alexnet-owt-7be5be79.pth"  # torchvision's file name, for art-fid's own LPIPS
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), files["alexnet"])
    return files


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two 48 px "outputs" of chelsea.png and two reference "paintings"."""
    base = tmp_path_factory.mktemp("field")
    (base / "outputs").mkdir()
    (base / "refs").mkdir()
    (base / "empty").mkdir()
    with Image.open(EXAMPLES / "chelsea.png") as photo:
        small = photo.convert("RGB").resize((48, 40))
    small.save(base / "outputs" / "a.png")
    small.rotate(180).save(base / "outputs" / "b.png")
    for name in ("astronaut.png", "coffee.png"):
        with Image.open(EXAMPLES / name) as image:
            image.convert("RGB").resize((40, 40)).save(base / "refs" / name)
    (base / "empty" / "notes.txt").write_text("no image here")
    return {name: base / name for name in ("outputs", "refs", "empty")}


def _flags(paths: dict[str, Path]) -> list[str]:
    return ["--scorer", f"{tiny.TINY_CLIP_NAME}/openai:file={paths['clip_checkpoint']}", "--clip-model-config",
            str(paths["clip_model_config"]), "--vgg-checkpoint", str(paths["vgg_checkpoint"]), "--offline",
            "--device", "cpu", "--patch-crops", "2", "--content", str(EXAMPLES / "chelsea.png"), "--prompt", "red"]


KEPT = 8  # feature dimensions kept in the end-to-end eval (see `document`)


@pytest.fixture(scope="module")
def document(tiny_paths: dict[str, Path], random_weights: dict[str, Path], folders: dict[str, Path],
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One eval of both outputs with --reference-dir, DINO and FID weights (no ArtFID weights, no LPIPS).

    The matrix square root of a 2048-d covariance product takes 15-20 s on 2 cores, so the eval
    keeps the first KEPT feature dimensions; the full features are checked against pytorch-fid's
    own activations separately, and the distance is pytorch-fid's on whatever it is given."""
    out = tmp_path_factory.mktemp("eval") / "e.json"
    full_features = FeatureNetwork.features
    distances = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FeatureNetwork, "features", lambda self, image: full_features(self, image)[:KEPT])
        patch.setattr(setlevel, "frechet_distance", lambda a, b: distances.append(1) or frechet_distance(a, b))
        home = tmp_path_factory.mktemp("empty-caches")
        for name in ("HF_HOME", "HF_HUB_CACHE", "TORCH_HOME"):
            patch.setenv(name, str(home / name))
        result = _invoke("eval", folders["outputs"] / "a.png", folders["outputs"] / "b.png", *_flags(tiny_paths),
                         "--reference-dir", folders["refs"], "--dino-checkpoint", random_weights["dino"],
                         "--fid-inception-checkpoint", random_weights["fid"], "--json", out)
    assert result.exit_code == 0, result.output
    assert "set metrics against" in result.output
    assert len(distances) == 1  # fid once, though the JSON and the printed table both show it
    return dict(json.loads(out.read_text()))


def test_fid_equals_pytorch_fid_called_on_the_two_folders(document: dict[str, Any], random_weights: dict[str, Path],
                                                          folders: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """pytorch-fid's own pipeline (its image loading, InceptionV3 and activations) on the two
    folders gives the features eval uses; its Fréchet distance of those gives eval's fid."""
    from pytorch_fid import fid_score, inception

    state = torch.load(random_weights["fid"], weights_only=True)
    monkeypatch.setattr(inception, "load_state_dict_from_url", lambda *args, **kwargs: state)
    model = inception.InceptionV3([3]).eval()
    acts = {name: fid_score.get_activations(sorted(str(p) for p in folders[name].iterdir()), model, batch_size=1,
                                            dims=2048, device="cpu", num_workers=0) for name in ("outputs", "refs")}
    assert np.abs(acts["refs"]).mean() > 0.1 and np.abs(acts["refs"][0] - acts["refs"][1]).max() > 0.01
    a, b = acts["outputs"][:, :KEPT], acts["refs"][:, :KEPT]
    expected = fid_score.calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0),
                                                    np.cov(b, rowvar=False))
    entry = document["set_metrics"]["overall"]["fid"]
    assert entry["value"] == pytest.approx(expected, rel=1e-5)
    assert (entry["n_outputs"], entry["n_reference"]) == (2, 2)
    assert entry["implementation"].startswith("pytorch-fid ") and "InceptionV3" in entry["network"]
    assert entry["weights_sha256"] and document["set_metrics"]["reference"]["n"] == 2
    art = document["set_metrics"]["overall"]["artfid"]
    assert art["value"] is None and "no art-trained Inception weights" in art["reason"]


def _view_by_hand(image: torch.Tensor) -> torch.Tensor:
    resized = F.interpolate(image, size=(224, 224), mode="bicubic", align_corners=False, antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (resized - mean) / std


def _cls_by_hand(model: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.forward_features(_view_by_hand(image))[:, 0]  # type: ignore[operator]


def _pixels(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None]


def test_dino_content_similarity_is_the_cosine_of_timm_cls_tokens(document: dict[str, Any],
                                                                  random_weights: dict[str, Path],
                                                                  folders: dict[str, Path]) -> None:
    import timm

    model = timm.create_model("vit_small_patch16_224.dino", pretrained=False, num_classes=0).eval()
    model.load_state_dict(torch.load(random_weights["dino"], weights_only=True))
    with Image.open(folders["outputs"] / "a.png") as out, Image.open(EXAMPLES / "chelsea.png") as photo:
        out_size = out.size
        output, content = _pixels(out), _pixels(photo.convert("RGB").resize(out.size, Image.Resampling.BICUBIC))
    expected = float(F.cosine_similarity(_cls_by_hand(model, output), _cls_by_hand(model, content))[0])
    row = next(row for row in document["rows"] if row["output"].endswith("a.png"))
    assert row["metrics"]["dino_content_similarity"] == pytest.approx(expected, abs=1e-5)
    # an output this close to its photo gives a cosine near 1 whatever token is read: two unrelated
    # images tell the CLS token from the mean of the patch tokens
    with Image.open(EXAMPLES / "coffee.png") as other:
        coffee = _pixels(other.convert("RGB").resize(out_size))
    with torch.no_grad():
        patches = [model.forward_features(_view_by_hand(image))[:, 1:].mean(1)  # type: ignore[operator]
                   for image in (output, coffee)]
    by_hand = float(F.cosine_similarity(_cls_by_hand(model, output), _cls_by_hand(model, coffee))[0])
    assert abs(by_hand - float(F.cosine_similarity(*patches)[0])) > 1e-3
    assert DinoSimilarity(model)(output, coffee) == pytest.approx(by_hand, abs=1e-5)
    assert torch.allclose(DinoSimilarity(model).view(output), _view_by_hand(output), atol=1e-5)
    assert document["dino"]["network"] == "vit_small_patch16_224.dino" and document["dino"]["implementation"]
    assert row["metrics"]["clip_style_similarity"] is None
    assert "style image" in row["unavailable"]["clip_style_similarity"]


def test_dino_without_weights_is_unavailable_with_the_reason(tmp_path: Path) -> None:
    dino = load_dino(None, None, offline=True, device=torch.device("cpu"))
    assert dino.model is None and "not found offline" in str(dino.reason)
    with pytest.raises(WeightsError, match="--dino-checkpoint"):
        load_dino(tmp_path / "missing.pth", None, offline=True, device=torch.device("cpu"))


def test_clip_style_similarity_is_the_weighted_mean_cosine_by_hand(tmp_path: Path) -> None:
    """The toy scorer embeds an image as its mean colour: cos(red-ish, red) and cos(red-ish, blue)."""
    colours = {"red.png": (255, 0, 0), "blue.png": (0, 0, 255)}
    for name, rgb in colours.items():
        Image.new("RGB", (8, 8), rgb).save(tmp_path / name)

    def load(path: Path) -> torch.Tensor:
        with Image.open(path) as image:
            return _pixels(image)

    scorer = SimpleNamespace(member=SimpleNamespace(backbone=toy.ToyColourBackbone()))
    networks = SimpleNamespace(style_embeddings=StyleEmbeddings(load), scorer=scorer)
    styles = (StyleImage(tmp_path / "red.png", 1.0), StyleImage(tmp_path / "blue.png", 3.0))
    target = SimpleNamespace(style_images=styles, style_images_missing=None)
    output = torch.tensor([0.8, 0.2, 0.4]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    sample = SimpleNamespace(networks=networks, target=target, output=output)
    norm = math.sqrt(0.64 + 0.04 + 0.16)
    expected = (1 * 0.8 / norm + 3 * 0.4 / norm) / 4
    assert metric_named("clip_style_similarity").compute(sample) == pytest.approx(expected, abs=1e-6)  # type: ignore[arg-type]


def _frechet_by_pytorch_fid(a: np.ndarray, b: np.ndarray) -> float:
    from pytorch_fid.fid_score import calculate_frechet_distance

    return float(calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)))


def _frechet_by_art_fid(a: np.ndarray, b: np.ndarray) -> float:
    from art_fid.art_fid import compute_frechet_distance

    return float(compute_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)))


def test_artfid_and_fid_per_cell_with_n_on_each_side_and_too_few_images_null() -> None:
    rng = np.random.default_rng(0)
    outputs, reference = rng.normal(size=(6, 3)), rng.normal(1.0, 2.0, size=(4, 3))
    art_out, art_ref = rng.normal(size=(6, 3)), rng.normal(0.5, 1.0, size=(4, 3))
    lpips = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    cells = ["a", "b", "a", "b", "a", "c"]
    rows = [{"cell": cell, "metrics": {"lpips": value}, "unavailable": {}}
            for cell, value in zip(cells, lpips, strict=True)]
    provenance = {"fid": {"network": "n1"}, "art": {"network": "n2"}}
    summary = set_summary(rows, {"fid": outputs, "art": art_out}, {"fid": reference, "art": art_ref}, {}, provenance)
    overall = summary["overall"]
    assert overall["fid"]["value"] == pytest.approx(_frechet_by_pytorch_fid(outputs, reference), rel=1e-9)
    expected_art = (1 + np.mean(lpips)) * (1 + _frechet_by_art_fid(art_out, art_ref))
    assert overall["artfid"]["value"] == pytest.approx(expected_art, rel=1e-9)
    assert overall["artfid"]["network"] == "n2" and overall["fid"]["network"] == "n1"  # never mixed
    cell_a, cell_b, cell_c = (summary["per_cell"][cell] for cell in "abc")
    assert cell_a["fid"]["value"] == pytest.approx(_frechet_by_pytorch_fid(outputs[[0, 2, 4]], reference), rel=1e-9)
    assert (cell_a["fid"]["n_outputs"], cell_a["fid"]["n_reference"]) == (3, 4)
    expected_b = (1 + np.mean([0.2, 0.4])) * (1 + _frechet_by_art_fid(art_out[[1, 3]], art_ref))
    assert cell_b["artfid"]["value"] == pytest.approx(expected_b, rel=1e-9)
    assert cell_c["fid"]["value"] is None and "at least 2 images" in cell_c["fid"]["reason"]
    assert cell_c["fid"]["n_outputs"] == 1
    rows[0]["metrics"]["lpips"], rows[0]["unavailable"] = None, {"lpips": "no AlexNet weights"}
    values = set_metric_values({"fid": outputs, "art": art_out}, {"fid": reference, "art": art_ref}, rows,
                               {"fid": "no FID weights"}, provenance)
    assert values["artfid"]["value"] is None and "no AlexNet weights" in values["artfid"]["reason"]
    assert values["fid"]["value"] is None and values["fid"]["reason"] == "no FID weights"
    assert [m.name for m in SET_METRICS] == ["fid", "artfid"] and all(m.direction == "lower" for m in SET_METRICS)


def test_art_inception_is_art_fids_network_fed_as_art_fid_feeds_it(random_weights: dict[str, Path],
                                                                    tmp_path: Path) -> None:
    """art-fid's compute_fid: Inception3(), load_state_dict(strict=False), the image in [0, 1] at its
    own size, `model(x, return_features=True)`."""
    from art_fid.inception import Inception3

    network = load_art_inception(random_weights["art"], None, offline=True, device=torch.device("cpu"))
    assert network.model is not None and network.provenance["weights_origin"] == "explicit"
    assert network.provenance["implementation"] == "art-fid 0.0.2"
    image = torch.rand(1, 3, 80, 96)
    reference = Inception3()
    reference.load_state_dict(torch.load(random_weights["art"], weights_only=True), strict=False)
    with torch.no_grad():
        expected = reference.eval()(image, return_features=True)
    assert float(expected.abs().mean()) > 0.01
    assert np.allclose(network.features(image), expected[0].double().numpy(), rtol=1e-4, atol=1e-6)
    with pytest.raises(MetricUnavailable, match="under the 75 pixels"):
        network.features(torch.rand(1, 3, 74, 96))
    assert load_art_inception(None, None, offline=True, device=torch.device("cpu")).model is None
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="missing Conv2d_1a_3x3"):
        load_art_inception(tmp_path / "other.pth", None, offline=True, device=torch.device("cpu"))


def test_without_the_art_fid_package_artfid_is_unavailable_with_the_install_line(
        random_weights: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from clipstyler_opt.evaluate import inception

    monkeypatch.setattr(inception, "_art_fid_version", lambda: None)
    network = load_art_inception(None, None, offline=True, device=torch.device("cpu"))
    assert network.model is None and "pip install --no-deps art-fid==0.0.2" in str(network.reason)
    with pytest.raises(WeightsError, match="art-fid package is not installed"):
        load_art_inception(random_weights["art"], None, offline=True, device=torch.device("cpu"))


ART_SIZE = (96, 80)  # art-fid feeds images at their own size: Inception-v3 needs 75 px a side


@pytest.fixture(scope="module")
def art_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """art-fid's three folders: two outputs, their content images (chelsea.png at the output's size,
    as eval resizes it; paired by sorted name, as art-fid pairs them) and three reference images."""
    base = tmp_path_factory.mktemp("art")
    for name in ("outputs", "content", "refs"):
        (base / name).mkdir()
    with Image.open(EXAMPLES / "chelsea.png") as photo:
        content = photo.convert("RGB").resize(ART_SIZE, Image.Resampling.BICUBIC)
    for name, output in (("a.png", content.filter(ImageFilter.GaussianBlur(2))), ("b.png", content.rotate(180))):
        output.save(base / "outputs" / name)
        content.save(base / "content" / name)
    for name, size in (("astronaut.png", (90, 100)), ("coffee.png", (120, 80)), ("chelsea.png", (80, 80))):
        with Image.open(EXAMPLES / name) as image:
            image.convert("RGB").resize(size).save(base / "refs" / name)
    return {name: base / name for name in ("outputs", "content", "refs")}


def test_artfid_equals_art_fid_compute_art_fid_on_the_same_folders(tiny_paths: dict[str, Path],
                                                                 random_weights: dict[str, Path],
                                                                 art_folders: dict[str, Path],
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """eval's artfid against the authors' package run end to end on the folders (its image loading,
    Inception3, its own LPIPS from lpips.LPIPS(net='alex'), its Fréchet distance), both keeping the
    first KEPT feature dimensions (a 2048-d matrix square root takes 15-20 s here)."""
    from art_fid import art_fid, utils

    full_features = FeatureNetwork.features
    out = tmp_path / "e.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FeatureNetwork, "features", lambda self, image: full_features(self, image)[:KEPT])
        for name in ("HF_HOME", "HF_HUB_CACHE", "TORCH_HOME"):
            patch.setenv(name, str(tmp_path / "empty" / name))
        result = _invoke("eval", *sorted(art_folders["outputs"].iterdir()), *_flags(tiny_paths),
                         "--reference-dir", art_folders["refs"], "--art-inception-checkpoint", random_weights["art"],
                         "--lpips-checkpoint", random_weights["alexnet"], "--json", out)
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    entry = document["set_metrics"]["overall"]["artfid"]
    assert (entry["n_outputs"], entry["n_reference"]) == (2, 3) and entry["implementation"] == "art-fid 0.0.2"

    hub = tmp_path / "torch-home" / "hub" / "checkpoints"  # where torchvision finds AlexNet for art-fid's LPIPS
    hub.mkdir(parents=True)
    shutil.copy(random_weights["alexnet"], hub / random_weights["alexnet"].name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(utils, "download", lambda url, ckpt_dir=None: str(random_weights["art"]))
    activations = art_fid.get_activations
    monkeypatch.setattr(art_fid, "get_activations", lambda *args, **kwargs: activations(*args, **kwargs)[:, :KEPT])
    expected = art_fid.compute_art_fid(str(art_folders["outputs"]), str(art_folders["refs"]),
                                       str(art_folders["content"]), batch_size=1, device="cpu", mode="art_fid",
                                       content_metric="lpips", num_workers=0)
    assert expected > 1.0
    assert entry["value"] == pytest.approx(expected, rel=1e-5)
    lpips = [row["metrics"]["lpips"] for row in document["rows"]]
    assert all(value > 0.01 for value in lpips)  # the content factor is there, not 1


def test_artfid_is_null_with_the_reason_for_images_under_75_pixels(tiny_paths: dict[str, Path],
                                                                  random_weights: dict[str, Path],
                                                                  folders: dict[str, Path],
                                                                  art_folders: dict[str, Path], tmp_path: Path) -> None:
    """48×40 outputs against large references, then against 40 px references."""
    for refs, expected in ((art_folders["refs"], r"^2 output\(s\) without features: \S*a\.png: an image of 48×40 "
                                                 "is under the 75 pixels"),
                           (folders["refs"], "^reference astronaut.png: an image of 40×40 is under the 75 pixels")):
        result = _invoke("eval", folders["outputs"] / "a.png", folders["outputs"] / "b.png", *_flags(tiny_paths),
                         "--reference-dir", refs, "--art-inception-checkpoint", random_weights["art"],
                         "--json", tmp_path / "e.json")
        assert result.exit_code == 0, result.output
        entry = json.loads((tmp_path / "e.json").read_text())["set_metrics"]["overall"]["artfid"]
        assert entry["value"] is None and re.match(expected, entry["reason"]), entry


def test_a_reference_folder_without_images_or_missing_is_a_one_line_error(tiny_paths: dict[str, Path],
                                                                         folders: dict[str, Path],
                                                                         tmp_path: Path) -> None:
    for folder, message in ((folders["empty"], "no image in it"), (tmp_path / "absent", "not a folder")):
        result = _invoke("eval", folders["outputs"] / "a.png", *_flags(tiny_paths), "--reference-dir", folder,
                         "--json", tmp_path / "e.json")
        assert result.exit_code == 2 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "e.json").exists()
    shutil.rmtree(tmp_path, ignore_errors=True)
