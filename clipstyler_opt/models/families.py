"""The registry of backbone families: everything the program asks about a family, in one entry.

A *family* is a kind of vision-language backbone (open_clip's models are one; the tests register
toy ones). A spec names its family by its source: a registered family name, else open_clip. The
rest of the program never asks a backbone what it is; it asks its family's entry:

==================  ===========================================  ===================================
capability          asked by                                     when the family does not declare it
==================  ===========================================  ===================================
``create``          loading (`create_backbone`)                  required
``requirements``    `Stylizer`, `eval`, `bench`: extras and      required (`no_requirements` says
                    names, checked before any weights are        "nothing beyond the base install")
                    looked for
``provenance_keys`` every created backbone's `provenance` must   required; must include "family"
                    carry them (records, text cache)
``memory``          the memory check (`run/resources.py`)        one-line error (exit 2) when the
                                                                 memory of a run is checked
``random_weights``  `clipopt bench` (real compute, no download)  one-line error (exit 2) from bench
``frozen_towers``   `--bf16-weights` (image towers stored bf16)  weights kept fp32, with a warning
                                                                 in the run's record
==================  ===========================================  ===================================

`register_family` refuses an entry that is half-wired (a required capability missing, a
capability with the wrong signature), naming what is wrong; `contract_problems` lists it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from clipstyler_opt.core.backbone_spec import BackboneSpec, LoadContext
from clipstyler_opt.core.errors import ConfigError

if TYPE_CHECKING:  # torch is imported where a backbone is built, not when options are checked
    import torch
    from torch import nn

__all__ = [
    "CAPABILITIES",
    "BackboneFactory",
    "BackboneFamily",
    "TowerMemory",
    "VisionLanguageBackbone",
    "contract_problems",
    "families",
    "family_named",
    "family_of",
    "list_backbones",
    "no_requirements",
    "register_backbone",
    "register_family",
]

OPEN_CLIP = "open_clip"


@runtime_checkable
class VisionLanguageBackbone(Protocol):
    """What the losses need from CLIP-like models."""

    input_size: tuple[int, int]
    interpolation: str
    provenance: dict[str, Any]

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """Raw (unnormalised) embeddings of RGB images in [0, 1] already at `input_size`."""
        ...

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Raw (unnormalised) embeddings, one row per text."""
        ...


@dataclass(frozen=True)
class TowerMemory:
    """What one backbone adds to the memory of an optimisation step, in fp32 bytes.

    Args:
        weight_bytes: its parameters (image and text towers), as loaded.
        view_bytes: what one more view (the whole image or one crop, at the tower's input size)
            adds to the peak of an optimisation step, forward and backward, in fp32.

    Example:
        >>> TowerMemory(weight_bytes=4e8, view_bytes=2.6e7).view_bytes
        26000000.0
    """

    weight_bytes: float
    view_bytes: float

    def __post_init__(self) -> None:
        for name in ("weight_bytes", "view_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise ValueError(f"TowerMemory.{name} must be a finite number >= 0, got {value!r}")


BackboneFactory = Callable[[BackboneSpec, LoadContext, "torch.device"], VisionLanguageBackbone]
Requirements = Callable[[BackboneSpec, LoadContext], None]
MemoryProfile = Callable[[BackboneSpec, LoadContext], TowerMemory]
RandomWeights = Callable[[BackboneSpec, Path, int], BackboneSpec]
FrozenTowers = Callable[[VisionLanguageBackbone], Sequence["nn.Module"]]

# capability -> its parameters (positional), for the contract check
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "create": ("spec", "context", "device"),
    "requirements": ("spec", "context"),
    "memory": ("spec", "context"),
    "random_weights": ("spec", "folder", "seed"),
    "frozen_towers": ("backbone",),
}
REQUIRED = ("create", "requirements")


def no_requirements(spec: BackboneSpec, context: LoadContext) -> None:
    """The `requirements` of a family that needs nothing beyond the base install.

    Example:
        >>> no_requirements(BackboneSpec("toy"), LoadContext())
    """


@dataclass(frozen=True)
class BackboneFamily:
    """One family's entry: how to build it and everything else the program asks about it.

    See the module docstring for who asks for each capability and what happens when an optional
    one is not declared.

    Example:
        >>> from clipstyler_opt.models.families import BackboneFamily, TowerMemory, no_requirements
        >>> family = BackboneFamily(
        ...     name="doc-toy", create=lambda spec, context, device: None, requirements=no_requirements,
        ...     provenance_keys=("family",),
        ...     memory=lambda spec, context: TowerMemory(weight_bytes=0, view_bytes=1e6),
        ...     random_weights=lambda spec, folder, seed: spec,  # builds without files
        ...     frozen_towers=lambda backbone: ())               # no layer weights to store in bf16
        >>> contract_problems(family)
        []
    """

    name: str
    create: BackboneFactory
    requirements: Requirements
    provenance_keys: tuple[str, ...] = ("family",)
    memory: MemoryProfile | None = None
    random_weights: RandomWeights | None = None
    frozen_towers: FrozenTowers | None = None

    def build(self, spec: BackboneSpec, context: LoadContext, device: torch.device) -> VisionLanguageBackbone:
        """`create`, then check that the backbone's provenance carries the declared keys."""
        backbone = self.create(spec, context, device)
        provenance = getattr(backbone, "provenance", None)
        missing = [key for key in self.provenance_keys if not isinstance(provenance, dict) or key not in provenance]
        if missing:
            raise ConfigError(f"backbone family {self.name!r}: its backbone's provenance lacks "
                              f"{', '.join(missing)}")
        return backbone

    def tower_memory(self, spec: BackboneSpec, context: LoadContext) -> TowerMemory:
        """The declared memory profile for `spec`; a one-line error when there is none."""
        if self.memory is None:
            raise ConfigError(f"backbone family {self.name!r} declares no memory profile, so whether the run fits "
                              "in memory cannot be checked (BackboneFamily.memory)")
        return self.memory(spec, context)

    def random_spec(self, spec: BackboneSpec, folder: Path, seed: int = 0) -> BackboneSpec:
        """`spec` with random-init files of its architecture written to `folder`; a one-line error
        when the family declares no random weights."""
        if self.random_weights is None:
            raise ConfigError(f"backbone family {self.name!r} declares no random weights, so clipopt bench "
                              "cannot build it (BackboneFamily.random_weights)")
        return self.random_weights(spec, folder, seed)

    def towers(self, backbone: VisionLanguageBackbone) -> list[nn.Module] | None:
        """The frozen image towers whose layer weights `--bf16-weights` stores in bf16; None when
        the family does not declare them."""
        return None if self.frozen_towers is None else list(self.frozen_towers(backbone))


def _signature_problem(capability: str, value: object) -> str | None:
    parameters = CAPABILITIES[capability]
    wanted = f"{capability}({', '.join(parameters)})"
    if not callable(value):
        return f"{capability} is not callable (expected {wanted})"
    try:
        inspect.signature(value).bind(*parameters)
    except TypeError:
        return f"{capability} has the wrong signature (expected {wanted})"
    except ValueError:  # a builtin without a signature: nothing to check
        return None
    return None


def contract_problems(family: BackboneFamily) -> list[str]:
    """What is missing or mis-declared in `family`'s entry; [] for a complete one.

    Example:
        >>> half = BackboneFamily(name="half", create=lambda spec, context: None,  # no device
        ...                       requirements=None, provenance_keys=())  # type: ignore[arg-type]
        >>> contract_problems(half)  # doctest: +NORMALIZE_WHITESPACE
        ['create has the wrong signature (expected create(spec, context, device))',
         'requirements is missing (declare no_requirements if the family needs nothing)',
         'provenance_keys must include "family"']
    """
    problems = []
    if not isinstance(family.name, str) or not family.name:
        problems.append("name must be a non-empty string")
    for capability in CAPABILITIES:
        value = getattr(family, capability)
        if value is None:
            if capability in REQUIRED:
                hint = " (declare no_requirements if the family needs nothing)" if capability == "requirements" else ""
                problems.append(f"{capability} is missing{hint}")
            continue
        problem = _signature_problem(capability, value)
        if problem:
            problems.append(problem)
    keys = family.provenance_keys
    if not isinstance(keys, tuple) or not all(isinstance(key, str) for key in keys):
        problems.append("provenance_keys must be a tuple of strings")
    elif "family" not in keys:
        problems.append('provenance_keys must include "family"')
    return problems


_FAMILIES: dict[str, BackboneFamily] = {}


def register_family(family: BackboneFamily) -> BackboneFamily:
    """Add (or replace) a family; a half-wired entry is refused with a one-line ConfigError
    naming what is missing.

    Example:
        >>> register_family(BackboneFamily("doc-half", create=lambda spec: None,
        ...                                requirements=no_requirements))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        clipstyler_opt.core.errors.ConfigError: backbone family 'doc-half' is half-wired: create has the wrong ...
    """
    problems = contract_problems(family)
    if problems:
        raise ConfigError(f"backbone family {family.name!r} is half-wired: {'; '.join(problems)}")
    _FAMILIES[family.name] = family
    return family


def register_backbone(name: str, factory: BackboneFactory, *, requirements: Requirements = no_requirements,
                      provenance_keys: tuple[str, ...] = ("family",), memory: MemoryProfile | None = None,
                      random_weights: RandomWeights | None = None,
                      frozen_towers: FrozenTowers | None = None) -> BackboneFamily:
    """Register a family from its factory and any other capabilities (see `BackboneFamily`).

    A spec whose source is `name` then loads through `factory(spec, context, device)`.

    Example:
        >>> import torch
        >>> class Grey:  # embeds an image as its mean colour; every text as grey
        ...     input_size, interpolation, provenance = (8, 8), "bilinear", {"family": "doc-grey"}
        ...     def encode_image(self, pixels): return pixels.mean(dim=(2, 3))
        ...     def encode_text(self, texts): return torch.ones(len(texts), 3)
        >>> family = register_backbone("doc-grey", lambda spec, context, device: Grey(),
        ...                            memory=lambda spec, context: TowerMemory(0, 1e4),
        ...                            random_weights=lambda spec, folder, seed: spec,
        ...                            frozen_towers=lambda backbone: ())
        >>> family_of(BackboneSpec.parse("doc-grey")).name
        'doc-grey'
    """
    return register_family(BackboneFamily(name, factory, requirements, provenance_keys, memory, random_weights,
                                          frozen_towers))


def family_named(name: str) -> BackboneFamily:
    """The registered family called `name`; ConfigError when there is none."""
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ConfigError(f"unknown backbone family {name!r}; registered: {', '.join(sorted(_FAMILIES))}") from None


def family_of(spec: BackboneSpec) -> BackboneFamily:
    """The family that builds `spec`: the one registered under its source, else open_clip."""
    return _FAMILIES.get(spec.source) or family_named(OPEN_CLIP)


def families() -> list[BackboneFamily]:
    """Every registered family, by name."""
    return [_FAMILIES[name] for name in sorted(_FAMILIES)]


def list_backbones() -> list[str]:
    """The names of the registered families."""
    return sorted(_FAMILIES)
