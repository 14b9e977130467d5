"""Skipping random initialisation changes no loaded weight, and only in the thread that asked."""

from __future__ import annotations

import threading
from pathlib import Path

import open_clip
import tiny
import torch
from safetensors.torch import load_file
from torch.nn import init

from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.models.clip import create_open_clip
from clipstyler_opt.models.no_init import initialisation_skipped


def test_init_functions_are_skipped_in_the_calling_thread_only() -> None:
    mine, theirs = torch.full((4,), 7.0), torch.full((4,), 7.0)
    with initialisation_skipped():
        init.normal_(mine)
        init.kaiming_uniform_(mine.view(2, 2))
        other = threading.Thread(target=lambda: init.normal_(theirs))
        other.start()
        other.join()
    assert torch.equal(mine, torch.full((4,), 7.0))
    assert not torch.equal(theirs, torch.full((4,), 7.0))
    init.normal_(mine)  # restored afterwards
    assert not torch.equal(mine, torch.full((4,), 7.0))


def test_a_backbone_built_without_initialisation_holds_exactly_the_files_weights(tiny_paths: dict[str, Path]) -> None:
    config = StyleConfig(backbone=(f"{tiny.TINY_CLIP_NAME}:file={tiny_paths['clip_checkpoint']}",),
                         clip_model_config=(tiny_paths["clip_model_config"],))
    backbone = create_open_clip(config.backbone_specs()[0], config.load_context(), torch.device("cpu"),
                                fast_vit=False)
    stored = load_file(str(tiny_paths["clip_checkpoint"]))
    state = backbone.model.state_dict()
    assert set(state) == set(stored)
    assert all(torch.equal(state[key], stored[key]) for key in stored)
    # Computed buffers (the text tower's causal mask) are computed as usual.
    reference = open_clip.create_model(tiny.TINY_CLIP_NAME)
    assert torch.equal(backbone.model.attn_mask, reference.attn_mask)
    assert torch.isinf(backbone.model.attn_mask).any()


def test_nested_use_restores_the_real_functions() -> None:
    real = init.normal_
    with initialisation_skipped():
        with initialisation_skipped():
            pass
        assert init.normal_ is not real
    assert init.normal_ is real
