"""Text tokenizers as weight-like assets: explicit folder -> hub caches -> download -> one-line error.

open_clip's CLIP models carry their BPE vocabulary inside the package. SigLIP and SigLIP2 use a
Hugging Face tokenizer (`text_cfg.hf_tokenizer_name`), which needs the `transformers` package and
the tokenizer's files; those are resolved here, never fetched by open_clip or transformers
themselves, so `--offline` and the caches behave exactly as for weights.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clipstyler_opt.core.errors import ConfigError, WeightsError
from clipstyler_opt.weights.download import check_reachable, one_line
from clipstyler_opt.weights.resolve import WeightsFile, _hub_caches, resolve_weights

__all__ = ["EXTRA_HINT", "TOKENIZER_FILES", "build_tokenizer", "require_extra_for", "resolve_tokenizer_folder"]

EXTRA_HINT = "pip install 'clipstyler_opt[siglip]'"
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "spiece.model",
                   "tokenizer.model", "vocab.json", "merges.txt", "vocab.txt", "added_tokens.json"]


def _available(module: str) -> bool:
    if module in sys.modules:  # None there means "import blocked"
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def _missing(modules: list[str]) -> list[str]:
    return [m for m in modules if not _available(m)]


def require_extra_for(name: str, model_cfg: Mapping[str, Any]) -> None:
    """A one-line ConfigError naming the extra when `model_cfg` needs packages that are absent.
    Called before anything is downloaded."""
    needed = []
    if model_cfg.get("vision_cfg", {}).get("timm_model_name"):
        needed.append("timm")
    if model_cfg.get("text_cfg", {}).get("hf_tokenizer_name") or model_cfg.get("text_cfg", {}).get("hf_model_name"):
        needed.append("transformers")
    missing = _missing(needed)
    if missing:
        raise ConfigError(f"backbone {name} needs {' and '.join(missing)}: install the extra with {EXTRA_HINT}")


def _has_tokenizer_files(folder: Path) -> bool:
    return any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "spiece.model",
                                                      "tokenizer.model"))


def resolve_tokenizer_folder(repo_id: str, *, explicit: Path | None, bundled: Path | None, cache_dir: Path | None,
                             offline: bool) -> WeightsFile:
    """The folder holding `repo_id`'s tokenizer files. `bundled` is a model folder that may carry
    them (local-dir: sources); it is used when it does."""
    from huggingface_hub import snapshot_download

    if explicit is not None:
        folder = Path(explicit).expanduser().absolute()
        if not folder.is_dir():
            raise WeightsError(f"tokenizer={explicit}: not a folder (pass the folder holding tokenizer.json)")
        if not _has_tokenizer_files(folder):
            raise WeightsError(f"tokenizer={explicit}: no tokenizer.json, tokenizer_config.json or *.model in it")
        return WeightsFile(folder, "explicit")
    if bundled is not None and _has_tokenizer_files(bundled):
        return WeightsFile(bundled, "explicit")
    caches = _hub_caches(cache_dir)

    def cached() -> Any:
        for cache in caches:
            try:
                folder = Path(snapshot_download(repo_id, allow_patterns=TOKENIZER_FILES, cache_dir=cache,
                                                local_files_only=True))
            except Exception:  # not in this cache
                continue
            if _has_tokenizer_files(folder):
                yield folder

    def download() -> Path:
        from huggingface_hub import constants

        check_reachable(constants.ENDPOINT)
        try:
            return Path(snapshot_download(repo_id, allow_patterns=TOKENIZER_FILES, cache_dir=caches[0],
                                          etag_timeout=10))
        except Exception as exc:
            raise WeightsError(f"{repo_id}: {one_line(exc)}") from exc

    return resolve_weights(f"tokenizer {repo_id}", explicit=None, explicit_flag="tokenizer=FOLDER",
                           cached=cached(), download=download, offline=offline,
                           looked_in=" and ".join(f"{c} ({repo_id})" for c in caches))


def build_tokenizer(model_name: str, model_cfg: Mapping[str, Any], folder: Path | None) -> Any:
    """open_clip's tokenizer for `model_cfg`: its bundled BPE, or an HF tokenizer read from `folder`."""
    import open_clip
    from open_clip.tokenizer import HFTokenizer

    text_cfg = model_cfg.get("text_cfg", {})
    context_length = text_cfg.get("context_length", 77)
    if folder is None:
        return open_clip.get_tokenizer(model_name) if model_name in open_clip.list_models() \
            else open_clip.SimpleTokenizer(context_length=context_length)
    kwargs = dict(text_cfg.get("tokenizer_kwargs", {}))
    try:
        return HFTokenizer(str(folder), context_length=context_length,
                           tokenizer_mode=text_cfg.get("tokenizer_mode"), **kwargs)
    except Exception as exc:  # transformers raises OSError/ValueError for broken folders
        raise WeightsError(f"cannot load the tokenizer in {folder}: {one_line(exc)}") from exc
