"""Style specs: grammar, canonical form, validation pointers, style images, and the fusion arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from clipstyler_opt.core.errors import ConfigError, InputImageError
from clipstyler_opt.core.styles import StyleImage, StylePart, StyleSpec, fuse_directions, normalised_weights
from clipstyler_opt.method.text import text_direction, text_embedding


def test_weighted_parts_parse_and_unweighted_parts_weigh_one() -> None:
    spec = StyleSpec.parse("starry night by Vincent van Gogh:0.7 | ukiyo-e woodblock print:0.3")
    assert spec.parts == (StylePart("starry night by Vincent van Gogh", 0.7), StylePart("ukiyo-e woodblock print", 0.3))
    spec = StyleSpec.parse("oil painting | blurry:-0.5")
    assert spec.texts == ("oil painting", "blurry") and spec.weights == (1.0, -0.5)
    assert not spec.is_single


@pytest.mark.parametrize("text, canonical", [
    ("oil painting:1 | blurry:-0.5", "oil painting | blurry:-0.5"),
    ("  a:2.0|b:1e-3 ", "a:2 | b:0.001"),
    (r"ratio 16\:9 | pipe \| here | back\\slash", r"ratio 16\:9 | pipe \| here | back\\slash"),
    ("photo: 1920s style", r"photo\: 1920s style"),
    ("x:0.1234567891", "x:0.1234567891"),
])
def test_canonical_form_round_trips(text: str, canonical: str) -> None:
    spec = StyleSpec.parse(text)
    assert str(spec) == canonical
    assert StyleSpec.parse(str(spec)) == spec


def test_escapes_give_literal_characters() -> None:
    spec = StyleSpec.parse(r"ratio 16\:9:0.5 | a \| b | c\\")
    assert spec.texts == ("ratio 16:9", "a | b", "c\\")
    assert spec.weights == (0.5, 1.0, 1.0)


def test_colon_followed_by_words_is_text_and_single_part_is_a_plain_prompt() -> None:
    spec = StyleSpec.parse("photo: 1920s style")
    assert spec.is_single and spec.texts == ("photo: 1920s style",)
    assert StyleSpec.parse("starry night").is_single
    assert StyleSpec.parse("starry night:1").is_single
    assert not StyleSpec.parse("starry night:2").is_single
    assert StyleSpec.single("a|b: c\\d").texts == ("a|b: c\\d",)


def test_only_the_last_colon_can_carry_a_weight() -> None:
    assert StyleSpec.parse("a:b c:0.5").parts == (StylePart("a:b c", 0.5),)


@pytest.mark.parametrize("text, message", [
    ("oil painting | blurry:abc",
     "part 2 ('blurry:abc'): weight 'abc' is not a number; write \\: for a literal colon"),
    ("oil:0.5x", "part 1 ('oil:0.5x'): weight '0.5x' is not a number"),
    ("oil:", "part 1 ('oil:'): nothing after ':'"),
    ("a | | b", "part 2 is empty"),
    ("a |", "part 2 is empty"),
    ("   ", "style prompt is empty"),
    (":0.5 | b", "part 1 (':0.5'): the style text is empty"),
    ("a:inf | b", "part 1 ('a:inf'): weight inf is not finite"),
    ("a | b:nan", "part 2 ('b:nan'): weight nan is not finite"),
    ("a:0 | b", "part 1 ('a:0'): weight is 0"),
    ("oil painting | blurry | Oil  Painting:2", "part 3 ('Oil  Painting:2') repeats part 1"),
    ("a:1 | b:-1", "style weights 1, -1 sum to 0"),
    (r"a\n", r"unknown escape '\\n'"),
    ("a\\", r"unknown escape '\\'"),
])
def test_bad_specs_name_the_part(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        StyleSpec.parse(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ConfigError, match="style prompt is empty"):
        StyleSpec(())
    with pytest.raises(ConfigError, match="weight is 0"):
        StyleSpec((StylePart("a", 0.0),))


def test_to_dict_records_spec_and_parts() -> None:
    spec = StyleSpec.parse("a:0.7 | b:0.3")
    assert spec.to_dict() == {"spec": "a:0.7 | b:0.3",
                              "parts": [{"text": "a", "weight": 0.7}, {"text": "b", "weight": 0.3}]}


# --- style images ---

def test_style_image_with_and_without_weight(tmp_path: Path) -> None:
    image = tmp_path / "wave.png"
    image.write_bytes(b"x")
    assert StyleImage.parse(str(image)) == StyleImage(image, 1.0)
    assert StyleImage.parse(f"{image}:0.25") == StyleImage(image, 0.25)
    assert StyleImage.parse(f"{image}:-2") == StyleImage(image, -2.0)


def test_style_image_whose_name_contains_a_colon(tmp_path: Path) -> None:
    odd = tmp_path / "wave:0.5"
    odd.write_bytes(b"x")
    assert StyleImage.parse(str(odd)) == StyleImage(odd, 1.0)  # the whole string is an existing file
    named = tmp_path / "a:b.png"
    named.write_bytes(b"x")
    assert StyleImage.parse(f"{named}:3") == StyleImage(named, 3.0)


def test_style_image_errors(tmp_path: Path) -> None:
    image = tmp_path / "wave.png"
    image.write_bytes(b"x")
    with pytest.raises(InputImageError, match="no such file"):
        StyleImage.parse(str(tmp_path / "missing.png:0.5"))
    with pytest.raises(InputImageError, match="no such file"):
        StyleImage.parse(f"{image}:abc")  # not a weight, so the whole string is the (missing) file
    for bad in ("0", "inf", "nan"):
        with pytest.raises(ConfigError, match="finite non-zero"):
            StyleImage.parse(f"{image}:{bad}")


# --- fusion arithmetic ---

def test_normalised_weights_divide_by_the_absolute_sum() -> None:
    assert normalised_weights([0.7, 0.3]) == pytest.approx((0.7, 0.3))
    assert normalised_weights([2.0, 2.0]) == (0.5, 0.5)
    assert normalised_weights([1.0, -0.5]) == (2.0, -1.0)  # sum 0.5
    assert normalised_weights([-1.0, -1.0]) == (-0.5, -0.5)  # sum -2: divided by 2, signs kept
    assert normalised_weights([1.0]) == (1.0,)
    with pytest.raises(ConfigError, match=r"style weights 1, -0\.9999999 sum to"):
        normalised_weights([1.0, -0.9999999])
    with pytest.raises(ConfigError, match=r"\(none\)"):
        normalised_weights([])


def test_fused_direction_follows_the_definition() -> None:
    a, b, source = F.normalize(torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 1.0, 1.0]]), dim=-1)
    got = fuse_directions(torch.stack([a, b]), [3.0, 1.0], source)
    by_hand = 0.75 * a + 0.25 * b - source
    assert torch.allclose(got, by_hand / by_hand.norm(), atol=1e-7)
    assert got.norm().item() == pytest.approx(1.0)


class _LengthText:
    """Raw text embeddings that depend on each text, so styles and source differ."""

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([[float(len(t)), float(t.count("a")) + 0.5, 1.0] for t in texts])


def test_single_style_of_weight_one_equals_the_plain_direction_exactly() -> None:
    backbone = _LengthText()
    style = text_embedding(backbone, "starry night", "simple")  # type: ignore[arg-type]
    source = text_embedding(backbone, "a Photo", "simple")  # type: ignore[arg-type]
    plain = text_direction(backbone, "starry night", "a Photo", "simple")  # type: ignore[arg-type]
    assert torch.equal(fuse_directions(style[None], [1.0], source), plain)


def test_fusion_refuses_mismatched_shapes_and_zero_sum() -> None:
    embeddings = torch.eye(3)[:2]
    with pytest.raises(ValueError):
        fuse_directions(embeddings, [1.0], torch.zeros(3))
    with pytest.raises(ValueError):
        fuse_directions(embeddings, [1.0, 1.0], torch.zeros(2))
    with pytest.raises(ConfigError, match="sum to 0"):
        fuse_directions(embeddings, [1.0, -1.0], torch.zeros(3))
