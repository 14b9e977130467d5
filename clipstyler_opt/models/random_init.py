"""Random-init checkpoints of real architectures, for honest speed measurements without downloads.

Random weights cost exactly the compute of pretrained ones. Models with a Hugging Face tokenizer
also get a stand-in tokenizer (a word-level vocabulary of the model's size): token ids, not their
meaning, are what the text tower's cost depends on.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from clipstyler_opt.core.backbone_spec import BackboneSpec

__all__ = ["randomised", "write_random_clip", "write_random_vgg"]


def write_random_clip(folder: Path, model: str, seed: int = 0) -> tuple[Path, Path | None]:
    """(safetensors file, tokenizer folder or None) for open_clip architecture `model`."""
    import open_clip
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    logging.disable(logging.WARNING)  # open_clip warns that no pretrained weights were loaded: intended here
    try:
        net = open_clip.create_model(model)
    finally:
        logging.disable(logging.NOTSET)
    path = folder / f"{model}-random.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    text_cfg = open_clip.get_model_config(model).get("text_cfg", {})
    tokenizer = None
    if text_cfg.get("hf_tokenizer_name"):
        tokenizer = write_word_tokenizer(folder / f"{model}-tokenizer", int(text_cfg["vocab_size"]))
    return path, tokenizer


def write_word_tokenizer(folder: Path, vocab_size: int) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    vocab.update({f"w{i}": i for i in range(3, vocab_size)})
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    from clipstyler_opt.core.files import write_atomic

    settings = json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "pad_token": "<pad>", "eos_token": "</s>",
                           "unk_token": "<unk>", "model_max_length": 1024})
    write_atomic(folder / "tokenizer_config.json", lambda fh: fh.write(settings.encode()))
    return folder


def write_random_vgg(folder: Path, seed: int = 0) -> Path:
    import torchvision

    torch.manual_seed(seed)
    path = folder / "vgg19-random.pth"
    features = torchvision.models.vgg19(weights=None).features
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return path


def randomised(spec: BackboneSpec, folder: Path, seed: int = 0) -> BackboneSpec:
    """`spec` with random-init local files of its architecture (its tag kept for preprocessing)."""
    if spec.file is not None or spec.schema is not None:
        return spec
    weights, tokenizer = write_random_clip(folder, spec.model, seed)
    return spec.with_defaults(file=weights, tokenizer=tokenizer)
