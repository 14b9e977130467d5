from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS / "netblock"))
sys.path.insert(0, str(TESTS))

import tiny  # noqa: E402
from _netblock import block_network, without_proxies  # noqa: E402

block_network()

from clipstyler_opt import StyleConfig  # noqa: E402

EXAMPLES = TESTS.parent / "examples"


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and two threads competing with other processes
    for two cores can be a hundred times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty weight caches and no offline switch, whatever the developer's machine has."""
    home = tmp_path / "cache-home"
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hf" / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    monkeypatch.setenv("CLIPOPT_CACHE_DIR", str(home / "clipopt"))
    monkeypatch.delenv("CLIPOPT_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(home / "hf" / "hub"))
    return home


@pytest.fixture(scope="session")
def tiny_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tiny.write_all(tmp_path_factory.mktemp("tiny-weights"))


@pytest.fixture
def tiny_config(tiny_paths: dict[str, Path]) -> StyleConfig:
    return StyleConfig(clip_model=tiny.TINY_CLIP_NAME, size=64, steps=3, crops=4, crop_size=32,
                       device="cpu", precision="fp32", **tiny_paths)


@pytest.fixture
def tiny_cli_args(tiny_paths: dict[str, Path]) -> list[str]:
    return ["--clip-model", tiny.TINY_CLIP_NAME, "--clip-model-config", str(tiny_paths["clip_model_config"]),
            "--clip-checkpoint", str(tiny_paths["clip_checkpoint"]),
            "--vgg-checkpoint", str(tiny_paths["vgg_checkpoint"]),
            "--size", "64", "--steps", "3", "--crops", "4", "--crop-size", "32", "--device", "cpu",
            "--precision", "fp32"]


@pytest.fixture
def photo() -> Path:
    return EXAMPLES / "chelsea.png"


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for `python -m clipstyler_opt` subprocesses: network blocked the same way
    (tests/netblock/sitecustomize.py runs at start-up) and no proxy variables."""
    env = without_proxies(dict(os.environ))
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS / "netblock"), str(TESTS), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"  # see one_torch_thread
    env.update(extra)
    return env
