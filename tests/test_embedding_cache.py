"""The scorer embedding cache's key and its writers: one weights file under another model or view
is another scorer, a moved weights file is the same one, and two processes saving side by side
keep each other's entries."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
import toy
from PIL import Image

from clipstyler_opt.evaluate.embeddings import CACHE_FOLDER, ScorerEmbeddings


def _member(**provenance: Any) -> Any:
    backbone = toy.ToyColourBackbone()
    backbone.provenance = {"family": "toy-colour", **provenance}
    return SimpleNamespace(backbone=backbone, spec="toy-colour",
                           texts=lambda text, templates: F.normalize(backbone.encode_text([text]).float(), dim=-1)[0])


def _images(folder: Path, count: int) -> list[Path]:
    paths = []
    for index in range(count):
        path = folder / f"image-{index}.png"
        Image.new("RGB", (8, 8), (40 * index + 10, 200 - 30 * index, 90)).save(path)
        paths.append(path)
    return paths


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_key_is_what_computes_the_embedding_not_where_the_file_is(tmp_path: Path) -> None:
    def cache(**provenance: Any) -> Path | None:
        return ScorerEmbeddings("s", _member(**provenance), "imagenet", "f" * 64, tmp_path).cache_path

    base = cache(model="ViT-B-32", quick_gelu=False, weights="/a/w.pt", preprocess={"size": [224, 224]})
    assert base == cache(model="ViT-B-32", quick_gelu=False, weights="/b/moved.pt",
                         preprocess={"size": [224, 224]}, weights_origin="cache")
    assert base != cache(model="ViT-B-32", quick_gelu=True, weights="/a/w.pt", preprocess={"size": [224, 224]})
    assert base != cache(model="ViT-B-32", quick_gelu=False, weights="/a/w.pt", preprocess={"size": [256, 256]})
    assert base != ScorerEmbeddings("s", _member(model="ViT-B-32", quick_gelu=False, weights="/a/w.pt",
                                                 preprocess={"size": [224, 224]}), "imagenet", "e" * 64,
                                    tmp_path).cache_path
    assert ScorerEmbeddings("s", _member(), "imagenet", None, tmp_path).cache_path is None


def test_another_model_config_over_the_same_weights_encodes_anew(tmp_path: Path) -> None:
    [image] = _images(tmp_path, 1)
    first = ScorerEmbeddings("s", _member(model="m", quick_gelu=False), "imagenet", "f" * 64, tmp_path)
    first.image(image)
    first.save()
    other = ScorerEmbeddings("s", _member(model="m", quick_gelu=True), "imagenet", "f" * 64, tmp_path)
    other.image(image)
    assert other.encoded == 1
    again = ScorerEmbeddings("s", _member(model="m", quick_gelu=False), "imagenet", "f" * 64, tmp_path)
    again.image(image)
    assert again.encoded == 0


def _encode_and_save(folder: str, paths: list[str], barrier: Any) -> None:
    cache = ScorerEmbeddings("s", _member(model="m"), "imagenet", "f" * 64, Path(folder))
    for path in paths:
        cache.image(Path(path))
    barrier.wait()  # both have loaded the (empty) cache and encoded their share before either saves
    cache.save()


def test_two_processes_saving_side_by_side_keep_each_others_entries(tmp_path: Path) -> None:
    images = _images(tmp_path, 6)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    workers = [context.Process(target=_encode_and_save, args=(str(tmp_path), [str(p) for p in share], barrier))
               for share in (images[:3], images[3:])]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    [cache] = (tmp_path / CACHE_FOLDER).glob("*.json")
    stored = json.loads(cache.read_text())["images"]
    assert set(stored) == {_sha256(p) for p in images}
    for path in images:  # each entry is that image's mean colour, normalised
        with Image.open(path) as image:
            colour = torch.tensor(image.getpixel((0, 0)), dtype=torch.float64) / 255
        assert torch.allclose(torch.tensor(stored[_sha256(path)], dtype=torch.float64), F.normalize(colour, dim=0),
                              atol=1e-6)
