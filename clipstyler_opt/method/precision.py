"""How the maths runs: device and mixed precision, frozen weights stored in bf16, and
torch.compile. Every fallback is reported, never silent."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import nn

from clipstyler_opt.core.errors import ConfigError, DeviceError

if TYPE_CHECKING:
    from clipstyler_opt.method.ensemble import Member

__all__ = [
    "Runtime",
    "compile_step",
    "cpu_has_native_bf16",
    "frozen_image_towers",
    "frozen_weights_dtype",
    "is_compile_failure",
    "resolve_compile",
    "resolve_device",
    "resolve_runtime",
    "store_weights_as",
]

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # what is actually used: fp32, fp16 or bf16
    notes: tuple[str, ...] = field(default=())

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return _DTYPES.get(self.precision)

    @property
    def uses_grad_scaler(self) -> bool:
        return self.precision == "fp16"

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)


def resolve_device(spec: str) -> torch.device:
    spec = spec.strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not _mps_available():
            raise DeviceError("device mps requested, but this machine or torch build has no MPS support")
        return torch.device("mps")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if match is None:
        raise ConfigError(f"invalid device {spec!r}; use auto, cpu, cuda, cuda:N or mps")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {spec} requested, but CUDA is not available here (use --device cpu or auto)")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise DeviceError(f"device {spec} requested, but only {torch.cuda.device_count()} CUDA device(s) exist")
    return torch.device("cuda", index)


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _supported(precision: str, device: torch.device) -> tuple[bool, str]:
    """Can `device` run autocast in `precision` at a useful speed? (ok, reason if not)."""
    if precision == "fp32":
        return True, ""
    if device.type == "cuda":
        if precision == "bf16" and not _cuda_native_bf16(device):
            return False, f"{torch.cuda.get_device_name(device)} has no native bf16 support"
        return True, ""
    if device.type == "cpu":
        if precision == "bf16":
            return cpu_has_native_bf16(), "this CPU has no native bf16 instructions"
        native_fp16 = getattr(torch.ops.mkldnn, "_is_mkldnn_fp16_supported", lambda: False)()
        return bool(native_fp16), "this CPU has no native fp16 instructions"
    if device.type == "mps":
        if not torch.amp.is_autocast_available("mps"):
            return False, "this torch build has no MPS autocast"
        if precision == "fp16":
            try:
                torch.amp.GradScaler("mps")
            except (RuntimeError, ValueError, AssertionError):
                return False, "this torch build has no fp16 gradient scaling on MPS"
        return True, ""
    return False, f"no autocast for {device.type}"


def _cuda_native_bf16(device: torch.device) -> bool:
    # is_bf16_supported() also accepts emulated bf16 and asks about the current device, not this one.
    return torch.cuda.get_device_capability(device) >= (8, 0)


def _auto_precision(device: torch.device) -> str:
    if device.type == "cuda":
        return "bf16" if _cuda_native_bf16(device) else "fp16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def resolve_runtime(device_spec: str, precision: str) -> Runtime:
    device = resolve_device(device_spec)
    if precision == "auto":
        return Runtime(device, _auto_precision(device))
    ok, reason = _supported(precision, device)
    if ok:
        return Runtime(device, precision)
    note = f"precision {precision} requested, but {reason}: running in fp32 instead"
    return Runtime(device, "fp32", (note,))


# --- frozen weights in the compute dtype ---
# Autocast runs these layers in bf16/fp16 and casts their fp32 weights and biases on every call
# (its cast cache only keeps weights that require gradients). Stored in that dtype already, the
# cast is skipped and the values are the same: rounding fp32 to bf16 gives the same bits whether
# autocast does it or we do. Norms, embeddings and other parameters keep fp32.
_LOWERED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _lowered_tensors(modules: Iterable[nn.Module]) -> Iterable[torch.Tensor]:
    for module in modules:
        for layer in module.modules():
            names = ("weight", "bias") if isinstance(layer, _LOWERED_LAYERS) else \
                ("in_proj_weight", "in_proj_bias") if isinstance(layer, nn.MultiheadAttention) else ()
            for name in names:
                tensor = getattr(layer, name, None)
                if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
                    yield tensor


def store_weights_as(modules: Iterable[nn.Module], dtype: torch.dtype) -> int:
    """Cast, in place, the weights and biases of the layers autocast lowers (Linear, Conv,
    MultiheadAttention's input projection) to `dtype`. Returns how many tensors changed."""
    changed = 0
    for tensor in _lowered_tensors(modules):
        if tensor.dtype != dtype:
            tensor.data = tensor.data.to(dtype)
            changed += 1
    return changed


def frozen_image_towers(members: Iterable[Member]) -> tuple[list[nn.Module], list[str]]:
    """The frozen image towers of `members` that `--bf16-weights` stores in bf16, as each
    member's family declares them (`BackboneFamily.frozen_towers`), and one note per member whose
    family declares none: its weights are kept in fp32, never skipped silently.

    Example:
        >>> towers, notes = frozen_image_towers([])
        >>> towers, notes
        ([], [])
    """
    from clipstyler_opt.models import family_of

    towers: list[nn.Module] = []
    notes = []
    for member in members:
        family = family_of(member.spec)
        declared = family.towers(member.backbone)
        if declared is None:
            notes.append(f"bf16-weights: backbone family {family.name!r} declares no frozen towers "
                         f"(BackboneFamily.frozen_towers); {member.spec}'s weights are kept in fp32")
        else:
            towers += declared
    return towers, notes


def frozen_weights_dtype(modules: Iterable[nn.Module]) -> torch.dtype | None:
    """The dtype of the first lowered layer's weight (None when there is none)."""
    return next((tensor.dtype for tensor in _lowered_tensors(modules)), None)


# --- torch.compile ---
def resolve_compile(mode: str, device: torch.device) -> tuple[str, tuple[str, ...]]:
    """(the mode to compile with, notes). CUDA graphs (reduce-overhead) exist only on CUDA."""
    if mode == "reduce-overhead" and device.type != "cuda":
        return "default", (f"compile reduce-overhead uses CUDA graphs, which need a CUDA device: compiling "
                           f"with mode default on {device.type} instead",)
    return mode, ()


Step = TypeVar("Step", bound=Callable[..., Any])


def compile_step(step: Step, mode: str) -> Step:
    """`step` compiled in `mode`. Random numbers drawn inside it (the crops) come from torch's own
    generator as in eager mode (inductor's `fallback_random`), so a seed draws the same crops
    compiled or not."""
    from torch._inductor import list_mode_options

    options = {**list_mode_options(mode), "fallback_random": True}
    return torch.compile(step, options=options)  # type: ignore[return-value]


def is_compile_failure(exc: BaseException) -> bool:
    """Did compiling fail (no C++ compiler, no Triton, a backend error), as opposed to the step itself?"""
    import torch._dynamo.exc as dynamo_exc
    import torch._inductor.exc as inductor_exc

    kinds = [getattr(dynamo_exc, name, None) for name in ("BackendCompilerFailed", "TritonUnavailableError",
                                                          "InternalTorchDynamoError")]
    kinds += [getattr(inductor_exc, name, None) for name in ("InductorError", "CppCompileError",
                                                             "CUDACompileError")]
    return isinstance(exc, tuple(kind for kind in kinds if isinstance(kind, type)))
