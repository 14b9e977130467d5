"""The machine a result was made on, as a record: device and its name, torch, CUDA, CPU, platform.

`clipopt bench --json` and the experiment folder's record (`experiment.json`) both keep it, so
results from two machines can be told apart.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

__all__ = ["device_name", "machine_record"]


def device_name(device: Any) -> str:
    """A GPU's name, or the CPU's model name (from /proc/cpuinfo where there is one).

    Example:
        >>> import torch
        >>> isinstance(device_name(torch.device("cpu")), str)
        True
    """
    import torch

    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_record(device_spec: str = "auto") -> dict[str, Any]:
    """The device `device_spec` resolves to here and what it runs on.

    Example:
        >>> record = machine_record("cpu")
        >>> record["device"], sorted(record)[:3]
        ('cpu', ['cpu_count', 'cpu_native_bf16', 'cuda'])
    """
    import torch

    from clipstyler_opt.method.precision import cpu_has_native_bf16, resolve_runtime

    device = resolve_runtime(device_spec, "fp32").device
    cuda = device.type == "cuda"
    return {"device": str(device), "device_name": device_name(device), "torch": torch.__version__,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if cuda else None,
            "cuda_capability": list(torch.cuda.get_device_capability(device)) if cuda else None,
            "cpu_native_bf16": cpu_has_native_bf16(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "platform": platform.platform()}
