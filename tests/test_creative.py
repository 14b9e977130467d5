"""Creative controls through the engine: style fusion, negative weights, style images, the strength
knob, keeping colours and full-resolution output, shown with the toy colour embedding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import toy
from PIL import Image
from test_toy_end_to_end import colour_bias, structure

from clipstyler_opt import StyleConfig, Stylizer
from clipstyler_opt.core.errors import ConfigError


@pytest.fixture(scope="module")
def stylizer(tmp_path_factory: pytest.TempPathFactory, tiny_paths: dict[str, Path]) -> Stylizer:
    return toy.toy_stylizer(tmp_path_factory.mktemp("identity-vgg"), tiny_paths, size=64, steps=25, crops=6)


@pytest.fixture(scope="module")
def pure(stylizer: Stylizer) -> dict[str, Image.Image]:
    from conftest import EXAMPLES

    return {colour: stylizer.stylize(EXAMPLES / "chelsea.png", colour).image for colour in ("red", "blue")}


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.mark.parametrize("fusion", ["directions", "losses"])
def test_one_style_of_weight_one_is_exactly_the_plain_prompt(stylizer: Stylizer, photo: Path, fusion: str) -> None:
    plain = stylizer.stylize(photo, "red", steps=3)
    spec = stylizer.stylize(photo, "red:1", steps=3, fusion=fusion)
    assert spec.history == plain.history
    assert np.array_equal(pixels(spec.image), pixels(plain.image))


@pytest.mark.parametrize("fusion", ["directions", "losses"])
def test_red_and_blue_fusion_lands_between_the_pure_runs(stylizer: Stylizer, photo: Path, fusion: str,
                                                         pure: dict[str, Image.Image]) -> None:
    mixed = stylizer.stylize(photo, "red:1 | blue:1", fusion=fusion).image
    red_gap = colour_bias(pure["red"], 0) - colour_bias(pure["blue"], 0)
    assert red_gap > 0.05
    assert colour_bias(pure["blue"], 0) < colour_bias(mixed, 0) < colour_bias(pure["red"], 0)
    assert colour_bias(pure["red"], 2) < colour_bias(mixed, 2) < colour_bias(pure["blue"], 2)


@pytest.mark.parametrize("fusion", ["directions", "losses"])
def test_a_negative_weight_steers_away(stylizer: Stylizer, photo: Path, fusion: str) -> None:
    away = stylizer.stylize(photo, "blue:1 | red:-0.5", fusion=fusion).image
    towards = stylizer.stylize(photo, "blue:1 | red:0.5", fusion=fusion).image
    assert colour_bias(away, 0) < colour_bias(towards, 0) - 0.01


def test_weights_that_sum_to_zero_are_refused(stylizer: Stylizer, photo: Path) -> None:
    with pytest.raises(ConfigError, match="sum to 0"):
        stylizer.stylize(photo, "red:1 | blue:-1")


def test_a_red_style_image_makes_the_output_redder(stylizer: Stylizer, photo: Path, tmp_path: Path) -> None:
    red_image = tmp_path / "red.png"
    Image.new("RGB", (48, 48), (230, 20, 20)).save(red_image)
    guided = stylizer.stylize(photo, "", style_image=(str(red_image),))
    assert colour_bias(guided.image, 0) > colour_bias(Image.open(photo), 0) + 0.05
    assert guided.metadata["style_images"][0]["name"] == "red.png"
    assert len(guided.metadata["style_images"][0]["sha256"]) == 64


def test_style_strength_trades_structure_for_style(stylizer: Stylizer, photo: Path) -> None:
    content = Image.open(photo)
    assert stylizer.stylize(photo, "red", steps=3, style_strength=0.5).history == \
        stylizer.stylize(photo, "red", steps=3).history  # 0.5 keeps today's weights exactly
    gentle = stylizer.stylize(photo, "red", style_strength=0.0)
    strong = stylizer.stylize(photo, "red", style_strength=1.0)
    assert gentle.metadata["objective"]["weights"]["content"] == pytest.approx(150 * 8)
    assert strong.metadata["objective"]["weights"]["content"] == pytest.approx(150 / 8)
    assert colour_bias(strong.image, 0) > colour_bias(gentle.image, 0)
    assert structure(gentle.image, content) > structure(strong.image, content)


def test_keep_colors_keeps_the_photos_chroma(stylizer: Stylizer, photo: Path) -> None:
    import kornia

    from clipstyler_opt.method.pixels import pil_to_tensor

    kept = stylizer.stylize(photo, "red", keep_colors=True).image
    plain = stylizer.stylize(photo, "red").image
    content = Image.open(photo).convert("RGB").resize(kept.size, Image.Resampling.BICUBIC)
    ycc = [kornia.color.rgb_to_ycbcr(pil_to_tensor(i)) for i in (kept, plain, content)]
    chroma_error = (ycc[0][:, 1:] - ycc[2][:, 1:]).abs().mean().item()
    luma_error = (ycc[0][:, :1] - ycc[1][:, :1]).abs().mean().item()
    assert chroma_error < 0.02 and luma_error < 0.02
    assert colour_bias(kept, 0) < colour_bias(plain, 0) - 0.05


def test_output_size_full_renders_the_input_size(stylizer: Stylizer, photo: Path) -> None:
    full = stylizer.stylize(photo, "red", output_size="full")
    working = stylizer.stylize(photo, "red")
    assert full.image.size == Image.open(photo).size and working.image.size != full.image.size
    assert full.history == working.history  # the optimisation itself is untouched
    # Rendered from the full-size photo, it is the photo's structure, not an upscaled thumbnail.
    assert structure(full.image, Image.open(photo), side=64) > 0.8
    upscaled = working.image.resize(full.image.size, Image.Resampling.BICUBIC)
    assert np.abs(pixels(full.image) - pixels(upscaled)).mean() > 2


def test_frames_come_at_the_animation_interval(stylizer: Stylizer, photo: Path) -> None:
    seen: list[int] = []
    stylizer.stylize(photo, "red", steps=4, animation="gif", on_frame=lambda step, image: seen.append(step))
    assert seen == [1, 2, 3, 4]  # 4 steps // 50 frames -> every step
    seen.clear()
    stylizer.stylize(photo, "red", steps=4, save_every=2, on_frame=lambda step, image: seen.append(step))
    assert seen == [2, 4]


@pytest.mark.parametrize("changes, message", [
    ({"style_strength": 1.5}, "style-strength"), ({"output_size": "huge"}, "output-size"),
    ({"animation": "clip.avi"}, "avi"), ({"fusion": "average"}, "fusion"),
    ({"style_image": ("missing.png",)}, "no such file"),
])
def test_bad_creative_options_fail_before_any_work(changes: dict[str, object], message: str) -> None:
    from clipstyler_opt.core.errors import ClipoptError

    with pytest.raises(ClipoptError, match=message):
        StyleConfig(**changes)  # type: ignore[arg-type]


# --- through the command line: run --from, animations, style options in run and batch ---

def _invoke(args: list[str]) -> tuple[int, str]:
    from click.testing import CliRunner

    from clipstyler_opt.cli import cli

    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.output


def test_run_from_an_output_reproduces_it_pixel_for_pixel(tmp_path: Path, photo: Path,
                                                          tiny_cli_args: list[str]) -> None:
    first = tmp_path / "first.png"
    code, out = _invoke(["run", str(photo), "starry night:0.7 | ukiyo-e:0.3", "-o", str(first), "--seed", "7",
                         "--style-strength", "0.3", "--keep-colors", *tiny_cli_args, "-q"])
    assert code == 0, out
    again = tmp_path / "again.png"
    code, out = _invoke(["run", "--from", str(first), "-o", str(again), "-q"])
    assert code == 0, out
    assert np.array_equal(pixels(Image.open(first)), pixels(Image.open(again)))
    import json

    recorded = [json.loads(p.with_name(p.name + ".json").read_text()) for p in (first, again)]
    assert recorded[1]["settings_hash"] == recorded[0]["settings_hash"]
    assert recorded[1]["prompt"] == "starry night:0.7 | ukiyo-e:0.3" and recorded[1]["seed"] == 7
    # An option given with --from overrides the record.
    other = tmp_path / "other.png"
    assert _invoke(["run", "--from", str(first), "-o", str(other), "--seed", "8", "-q"])[0] == 0
    assert json.loads(other.with_name("other.png.json").read_text())["seed"] == 8
    assert not np.array_equal(pixels(Image.open(first)), pixels(Image.open(other)))


def test_run_from_names_missing_weights(tmp_path: Path, photo: Path, tiny_paths: dict[str, Path],
                                        tiny_cli_args: list[str]) -> None:
    import shutil

    moved = {k: tmp_path / f"copy-{v.name}" for k, v in tiny_paths.items()}
    for key, path in moved.items():
        shutil.copy(tiny_paths[key], path)
    args = [a if a not in map(str, tiny_paths.values()) else str(moved[next(k for k, v in tiny_paths.items()
                                                                             if str(v) == a)]) for a in tiny_cli_args]
    first = tmp_path / "first.png"
    assert _invoke(["run", str(photo), "x", "-o", str(first), *args, "-q"])[0] == 0
    moved["vgg_checkpoint"].unlink()
    code, out = _invoke(["run", "--from", str(first), "-o", str(tmp_path / "again.png")])
    assert code == 4 and "sha256" in out and "copy-tiny-vgg19.pth" in out
    assert len(out.strip().splitlines()) == 1


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_run_writes_an_animation(tmp_path: Path, photo: Path, tiny_cli_args: list[str], fmt: str) -> None:
    out = tmp_path / "cat.png"
    code, output = _invoke(["run", str(photo), "x", "-o", str(out), "--animation", fmt, *tiny_cli_args, "-q"])
    assert code == 0, output
    with Image.open(tmp_path / f"cat.{fmt}") as animation:
        assert animation.n_frames == 3  # 3 steps, fewer than 50: one frame a step


def test_batch_takes_the_creative_options_and_writes_an_animation_per_job(tmp_path: Path, photo: Path,
                                                                           tiny_paths: dict[str, Path]) -> None:
    from test_batch_support import tiny_flags

    from clipstyler_opt.cli import main

    red = tmp_path / "red.png"
    Image.new("RGB", (32, 32), (220, 10, 10)).save(red)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(photo).save(folder / "cat.png")
    code = main(["batch", str(folder), "-p", "oil:1 | sketch:0.5", "-o", str(tmp_path / "out"), "-q",
                 "--fusion", "losses", "--style-image", f"{red}:0.5", "--style-strength", "0.8",
                 "--animation", "gif", "--output-size", "96", *tiny_flags(tiny_paths)])
    assert code == 0
    (image,) = (tmp_path / "out").glob("*/cat.png")
    import json

    meta = json.loads(image.with_name("cat.png.json").read_text())
    assert meta["style"]["fusion"] == "losses" and meta["style"]["style"]["parts"][1] == {"text": "sketch",
                                                                                         "weight": 0.5}
    assert meta["style_images"][0]["weight"] == 0.5
    assert max(Image.open(image).size) == 96
    assert Image.open(image.with_name("cat.gif")).n_frames == 2


def test_a_bad_style_spec_exits_2_before_any_weights(tmp_path: Path, photo: Path) -> None:
    code, out = _invoke(["run", str(photo), "oil:1 | blurry:abc", "-o", str(tmp_path / "o.png"),
                         "--vgg-checkpoint", str(tmp_path / "no-such-weights.pth")])
    assert code == 2 and "blurry:abc" in out
