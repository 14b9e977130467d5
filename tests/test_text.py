from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clipstyler_opt.method.text import TextEmbeddings, template_texts, text_direction, text_embedding


class _LookupText:
    """Raw text embeddings of very different norms, so the averaging order matters."""

    def __init__(self) -> None:
        self.calls = 0

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        self.calls += 1
        return torch.tensor([[float(len(t)), 1.0 + 10.0 * (i % 3)] for i, t in enumerate(texts)])


def test_imagenet_templates_are_clipstylers_79_prompts() -> None:
    """CLIPstyler's released list is CLIP's 80 ImageNet prompts without "a photo of many {}.",
    in CLIP's order; CLIP's 80 (as open_clip ships them) stay available as imagenet80."""
    from open_clip import OPENAI_IMAGENET_TEMPLATES

    texts = template_texts("starry night", "imagenet")
    assert len(texts) == 79
    assert "a photo of many starry night." not in texts
    clip80 = [template("starry night") for template in OPENAI_IMAGENET_TEMPLATES]
    assert template_texts("starry night", "imagenet80") == clip80
    assert texts == [t for t in clip80 if t != "a photo of many starry night."]
    assert texts[0] == "a bad photo of a starry night." and texts[-1] == "a tattoo of the starry night."
    assert template_texts("starry night", "none") == ["starry night"]


def test_raw_embeddings_are_averaged_before_normalising() -> None:
    backbone = _LookupText()
    texts = template_texts("cubism", "imagenet")
    raw = backbone.encode_text(texts)
    expected = F.normalize(raw.mean(0), dim=-1)
    wrong_order = F.normalize(F.normalize(raw, dim=-1).mean(0), dim=-1)
    got = text_embedding(backbone, "cubism", "imagenet")  # type: ignore[arg-type]
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, wrong_order, atol=1e-3)


def test_direction_is_the_normalised_difference() -> None:
    backbone = _LookupText()
    style = text_embedding(backbone, "cubism", "simple")  # type: ignore[arg-type]
    source = text_embedding(backbone, "a Photo", "simple")  # type: ignore[arg-type]
    got = text_direction(backbone, "cubism", "a Photo", "simple")  # type: ignore[arg-type]
    assert torch.allclose(got, F.normalize(style - source, dim=-1))
    assert got.norm().item() == pytest.approx(1.0)


def test_embeddings_are_cached_per_text() -> None:
    backbone = _LookupText()
    cache = TextEmbeddings(backbone)  # type: ignore[arg-type]
    first = cache("cubism", "none")
    calls = backbone.calls
    assert cache("cubism", "none") is first
    assert backbone.calls == calls
    cache("fauvism", "none")
    assert backbone.calls == calls + 1 and len(cache) == 2
