"""The memory check counts the --output-size render (issue: the estimate ignored it)."""

from __future__ import annotations

import pytest

from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import ResourceError
from clipstyler_opt.run import resources


def test_the_render_adds_its_buffers_and_one_budgeted_pass_by_hand() -> None:
    # 4000 x 3000 rendered at full size: a whole fp32 pass (52 bytes x width 16 per pixel) is over the
    # 2 GiB render budget, so the pass is tiled to the budget; buffers: 3 fp32 RGB copies, a fp32
    # blending weight and two 8-bit RGB images per output pixel.
    pixels = 4000 * 3000
    expected = 2 * 2**30 + pixels * (3 * 12 + 4 + 2 * 3)
    assert resources.render_bytes(StyleConfig(output_size="full"), 4000, 3000) == expected
    small = 1024 * 768  # one pass under the budget: the pass itself counts
    assert resources.render_bytes(StyleConfig(output_size="1024"), 4000, 3000) == small * 52 * 16 + small * 46
    assert resources.render_bytes(StyleConfig(), 4000, 3000) == 0


def test_the_peak_is_the_larger_of_the_step_and_the_render() -> None:
    base = StyleConfig(precision="fp32")
    step_only = resources.estimate_peak_bytes(base, 4000, 3000)
    # 8000 x 6000 at full size: 2 GiB + 48 M pixels x 46 bytes, over the step's activations at 512 px
    assert resources.estimate_peak_bytes(base.replace(output_size="full"), 8000, 6000) > \
        resources.estimate_peak_bytes(base, 8000, 6000)
    # a small render (600 x 450: about 0.24 GB) happens after the step's activations (gigabytes) are gone
    assert resources.estimate_peak_bytes(base.replace(output_size="600"), 4000, 3000) == step_only


def test_a_render_that_does_not_fit_is_refused_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    config = StyleConfig(precision="fp32", output_size="full")
    step_only = resources.estimate_peak_bytes(config.replace(output_size=None), 8000, 6000)
    monkeypatch.setattr(resources, "available_memory", lambda device: step_only + 2**20)
    with pytest.raises(ResourceError, match="smaller --output-size"):
        resources.check_memory(config, 8000, 6000, torch.device("cpu"))
    resources.check_memory(config.replace(output_size=None), 8000, 6000, torch.device("cpu"))  # fits
