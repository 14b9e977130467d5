"""The probes of `clipopt analyze` on toy geometry whose answers are known by construction: image
embeddings are colours, style texts are colour directions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clipstyler_opt.analysis.fits import Skipped
from clipstyler_opt.analysis.probes import (
    Observation,
    TextSpace,
    agreement_probe,
    gap_probe,
    recognition_probe,
    response_probe,
    text_image_probe,
)

RED, GREEN, BLUE = np.eye(3)
GREY = np.ones(3) / math.sqrt(3.0)
SPACE = TextSpace({"red": RED, "green": GREEN, "blue": BLUE}, {"red": RED, "green": GREEN, "blue": BLUE},
                  {"red": RED, "green": GREEN, "blue": BLUE})
LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _obs(output: str, content: str, prompt: str, delta: np.ndarray, **settings: float) -> Observation:
    return Observation(output, content, prompt, ((prompt, 1.0),), GREY + delta, GREY, settings=settings)


def _curve(response: object) -> list[Observation]:
    rng = np.random.default_rng(0)
    return [_obs(f"{c}-{x}", c, "red", response(x) * RED + rng.normal(0, 1e-3, 3), style_strength=x)  # type: ignore[operator]
            for c in ("cat", "cup", "rocket", "astronaut", "coffee") for x in LEVELS]


def test_a_response_linear_by_construction_gives_r2_one_and_gamma_one() -> None:
    result = response_probe(_curve(lambda x: 0.05 + 0.5 * x), SPACE, "style_strength")
    assert isinstance(result, dict)
    along = result["red"]["along"]
    assert along["linear"]["r2"] == pytest.approx(1.0, abs=1e-4)
    assert along["linear"]["b"] == pytest.approx(0.5, abs=1e-2)
    assert along["gamma"]["estimate"] == pytest.approx(1.0, abs=0.01)
    assert along["gamma"]["ci_low"] == pytest.approx(1.0, abs=0.02)


def test_each_other_setting_gets_its_own_curve_never_a_pooled_one() -> None:
    """A sweep over style_strength and two optimiser backbones: one backbone responds with slope
    0.5, the other not at all. Pooled, the slope would be 0.25 and R² far below 1."""
    from dataclasses import replace

    steep = [replace(o, labels={"backbone": "CLIP", "style_strength": str(o.settings["style_strength"])})
             for o in _curve(lambda x: 0.05 + 0.5 * x)]
    flat = [replace(o, output=o.output + "-flat", labels={"backbone": "SigLIP"})
            for o in _curve(lambda x: 0.3)]
    result = response_probe(steep + flat, SPACE, "style_strength")
    assert isinstance(result, dict)
    assert {"red [backbone=CLIP]", "red [backbone=SigLIP]"} <= set(result)
    assert result["red [backbone=CLIP]"]["along"]["linear"]["b"] == pytest.approx(0.5, abs=1e-2)
    assert result["red [backbone=CLIP]"]["along"]["linear"]["r2"] == pytest.approx(1.0, abs=1e-3)
    assert result["red [backbone=SigLIP]"]["along"]["linear"]["b"] == pytest.approx(0.0, abs=1e-2)


def test_a_saturating_response_gives_gamma_below_one() -> None:
    result = response_probe(_curve(lambda x: 0.05 + 1.0 - math.exp(-4.0 * x)), SPACE, "style_strength")
    along = result["red"]["along"]  # type: ignore[index]
    assert along["gamma"]["estimate"] < 1.0 and along["gamma"]["ci_high"] < 1.0
    assert along["preferred"] == "power"


def test_a_setting_that_was_not_varied_is_skipped_with_its_reason() -> None:
    observations = [_obs("a", "cat", "red", 0.3 * RED, style_strength=0.5)]
    result = response_probe(observations, SPACE, "style_strength")
    assert isinstance(result, Skipped) and "needs 2 or more" in result.reason


def test_an_output_equal_to_its_content_is_left_out_never_nan() -> None:
    observations = [*_curve(lambda x: 0.05 + 0.5 * x), _obs("same", "cat", "red", np.zeros(3), style_strength=0.5)]
    result = response_probe(observations, SPACE, "style_strength")
    assert result["degenerate_outputs_left_out"] == 1  # type: ignore[index]
    assert "nan" not in repr(result).lower()


def test_separable_styles_are_recognised_and_shuffled_labels_fall_to_chance() -> None:
    rng = np.random.default_rng(1)
    observations = [_obs(f"{c}-{p}", c, p, 0.4 * d + rng.normal(0, 0.02, 3), )
                     for c in ("cat", "cup", "rocket") for p, d in (("red", RED), ("green", GREEN), ("blue", BLUE))]
    result = recognition_probe(observations, SPACE)
    assert result["top1"] == 1.0 and result["chance_top1"] == pytest.approx(1 / 3)  # type: ignore[index]
    shuffled = []
    for _ in range(200):
        prompts = rng.permutation([o.prompt for o in observations])
        relabelled = [Observation(o.output, o.content, p, ((p, 1.0),), o.image, o.content_image)
                      for o, p in zip(observations, prompts, strict=True)]
        shuffled.append(recognition_probe(relabelled, SPACE)["top1"])  # type: ignore[index]
    assert np.mean(shuffled) == pytest.approx(1 / 3, abs=0.05)


def test_recognition_with_one_style_is_skipped() -> None:
    result = recognition_probe([_obs("a", "cat", "red", 0.3 * RED)], SPACE)
    assert isinstance(result, Skipped) and "needs 2 or more" in result.reason


def test_a_known_offset_between_modalities_is_the_gap() -> None:
    observations = [Observation("o", "c", "red", (("red", 1.0),), np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0]))]
    space = TextSpace({"red": np.array([0.0, 1.0, 0.0])}, {}, {})
    assert gap_probe(observations, space)["gap"] == pytest.approx(math.sqrt(2.0))  # type: ignore[index]


def test_text_side_similarity_predicts_image_side_similarity_when_images_follow_texts() -> None:
    rng = np.random.default_rng(2)
    angles = np.sort(rng.uniform(0.0, math.pi / 2, 6))  # distinct angle differences: no ties in text cos
    directions = {f"s{i}": np.array([math.cos(a), math.sin(a), 0.0]) for i, a in enumerate(angles)}
    space = TextSpace({}, {}, directions)
    observations = [Observation(f"{c}-{p}", c, p, ((p, 1.0),), GREY + 0.3 * d + rng.normal(0, 1e-3, 3), GREY)
                    for c in ("cat", "cup", "rocket", "coffee") for p, d in directions.items()]
    result = text_image_probe(observations, space)
    assert result["spearman_rho"]["estimate"] == pytest.approx(1.0, abs=0.02)  # type: ignore[index]
    assert result["n_pairs"] == 4 * 15  # type: ignore[index]


def test_identical_scorers_agree_perfectly_and_one_scorer_is_skipped() -> None:
    scores = {"o1": 0.2, "o2": 0.5, "o3": 0.1}
    assert agreement_probe({"CLIP": scores, "copy": dict(scores)})["pairs"][0]["tau"] == 1.0  # type: ignore[index]
    assert isinstance(agreement_probe({"CLIP": scores}), Skipped)


def test_figure_names_never_collide(tmp_path: object) -> None:
    from pathlib import Path

    from clipstyler_opt.analysis.plots import analysis_figures

    recognition = {"labels": ["a", "b"], "confusion": [[1, 0], [0, 1]], "top1": 1.0}
    summary = {"scorers": {name: {"probes": {"recognition": recognition}} for name in ("CLIP B", "CLIP-B")}}
    written = analysis_figures(summary, Path(str(tmp_path)))
    assert len({p.name for p in written}) == len(written) == 6


def test_two_prompts_give_one_text_similarity_and_rho_is_skipped_with_its_reason() -> None:
    space = TextSpace({}, {}, {"red": RED, "green": GREEN})
    contents = ("cat", "cup", "rocket", "coffee")
    observations = [_obs(f"{c}-{p}", c, p, 0.3 * d + 0.01 * i * GREEN)
                    for i, c in enumerate(contents) for p, d in (("red", RED), ("green", GREEN))]
    result = text_image_probe(observations, space)
    assert isinstance(result, Skipped) and "3 or more prompts" in result.reason


def test_a_flat_response_flags_gamma_as_not_identified() -> None:
    from clipstyler_opt.analysis.fits import CurveFit, fit_power

    fit = fit_power([(x, 0.5) for x in LEVELS])  # no response at all: every γ fits equally well
    assert isinstance(fit, CurveFit)
    assert fit.gamma_at_bound and "does not identify" in fit.to_dict()["note"]
