"""`Stylizer`: loads the backbones once, then optimises a fresh U-Net per (image, prompt).

The public API: `stylize()` for one image, `Stylizer` to reuse loaded backbones, and what runs
report (`Progress`, `Result`, `RunInterrupted`, from results.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from PIL import Image

from clipstyler_opt.core.config import StyleConfig, model_fields
from clipstyler_opt.core.errors import ConfigError, WeightsError
from clipstyler_opt.method.ensemble import Member, check_members, load_members
from clipstyler_opt.method.pixels import pil_to_tensor
from clipstyler_opt.method.precision import resolve_runtime
from clipstyler_opt.method.sizing import pad_to_multiple, working_size
from clipstyler_opt.method.targets import StyleTarget
from clipstyler_opt.models import create_content_network, resolve_content_weights
from clipstyler_opt.run.images import ImageSource, LoadedImage, load_image
from clipstyler_opt.run.optimise import Optimisation
from clipstyler_opt.run.results import FrameCallback, Progress, ProgressCallback, Result, RunInterrupted

__all__ = [
    "FrameCallback",
    "Progress",
    "ProgressCallback",
    "Result",
    "RunInterrupted",
    "Stylizer",
    "pad_to_multiple",
    "stylize",
    "working_size",
]

log = logging.getLogger(__name__)
# Fields that decide which backbones are loaded; changing them needs a new Stylizer.
BACKBONE_FIELDS = model_fields()


class Stylizer:
    """Holds the frozen backbones; each `stylize` call trains a new U-Net from scratch."""

    def __init__(self, config: StyleConfig | None = None, device: str | None = None) -> None:
        config = config or StyleConfig()
        self.config = config.replace(device=device) if device else config
        self.runtime = resolve_runtime(self.config.device, self.config.precision)
        for note in self.runtime.notes:
            log.warning(note)
        specs = self.config.backbone_specs()
        check_members(self.config)  # missing extras fail here, before any weights are looked for
        # The VGG file is looked for before any backbone is built, so a machine without weights
        # or network gets its answer in seconds.
        try:
            vgg_weights = resolve_content_weights(self.config.vgg_checkpoint, self.config.load_context())
        except WeightsError as missing:
            if any(spec.file is not None or spec.schema == "local-dir" for spec in specs):
                raise
            needed = ", ".join(str(spec) for spec in specs)
            raise WeightsError(f"{missing} (the backbone weights {needed} are needed too, unless already "
                               "cached)") from None
        self.members: list[Member] = load_members(self.config, self.runtime.device)
        self.vgg = create_content_network(vgg_weights, self.runtime.device)
        self.vgg_provenance = {"weights": str(vgg_weights.path), "weights_origin": vgg_weights.origin}

    def stylize(self, image: ImageSource | LoadedImage, prompt: str, *, progress: ProgressCallback | None = None,
                on_frame: FrameCallback | None = None, record_extra: dict[str, Any] | None = None,
                config: StyleConfig | None = None, frame_every: int | None = None, **overrides: Any) -> Result:
        """Optimise a fresh U-Net on `image` towards `prompt`; `overrides` replace config fields for
        this call (or `config` replaces the whole config, preset and all, its model fields unchanged),
        `record_extra` adds entries to the output's record (a sweep's cell), and `frame_every` sends
        `on_frame` the image every that many steps (a live preview) instead of the config's interval.

        Example (tiny models; see tests/tiny.py):
            stylizer = Stylizer(StyleConfig(steps=3, size=64))
            result = stylizer.stylize("cat.png", "oil painting", seed=1)
            result.save("cat-oil.png")
        """
        if config is not None and overrides:
            raise ConfigError("give either config or field overrides, not both")
        config = config or (self.config.replace(**overrides) if overrides else self.config)
        changed = [name for name in BACKBONE_FIELDS if getattr(config, name) != getattr(self.config, name)]
        if changed:
            raise ConfigError(f"{', '.join(changed)} cannot change per call; create a new Stylizer")
        target = style_target(prompt, config)  # a bad prompt or style image fails before any work
        runtime = self.runtime
        if config.precision != self.config.precision:
            runtime = resolve_runtime(config.device, config.precision)
            for note in runtime.notes:
                log.warning(note)
        started = time.perf_counter()
        loaded = image if isinstance(image, LoadedImage) else load_image(image)
        return Optimisation(self, config, runtime, loaded, prompt, target, started,
                            record_extra=record_extra, frame_every=frame_every).run(progress, on_frame)


def stylize(image: ImageSource, prompt: str, *, progress: ProgressCallback | None = None,
            **overrides: Any) -> Result:
    """One-shot convenience: build a `Stylizer` from `StyleConfig(**overrides)` and run it once."""
    return Stylizer(StyleConfig().replace(**overrides)).stylize(image, prompt, progress=progress)




def style_target(prompt: str, config: StyleConfig) -> StyleTarget:
    """The prompt (a style spec) and the config's style images as a target; images are loaded
    with the same checks as content images, at most at the working size."""
    images = []
    for style_image in config.style_images():
        rgb = load_image(style_image.path).rgb
        size = working_size(*rgb.size, min(config.size, max(rgb.size)))
        images.append((pil_to_tensor(rgb.resize(size, Image.Resampling.BICUBIC)), style_image.weight))
    return StyleTarget.from_prompt(prompt, config.source_text, config.fusion, tuple(images))
