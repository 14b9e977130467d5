"""A scorer's embeddings of a folder's images and texts, computed once per scorer and file.

`clipopt eval` and `clipopt analyze` share them: eval fills the cache with every output and
content image it scores, so an analysis after it encodes nothing again.

Image embeddings n(E_I(view(image))) are cached in the result folder, in
`<folder>/.clipopt-embeddings/<scorer key>.json`: one file per scorer identity (`scorer_identity`:
the weights' SHA-256, the model and its architecture, activation and image view, so one weights
file under another model config is another scorer), holding one entry per image keyed by the
image file's SHA-256. A changed file has another hash and is encoded anew. A scorer whose weights
have no known SHA-256 (a backbone built in code) is not cached. The cache is JSON (never
unpickled), ignored when unreadable, and written atomically under a lock, merged with what another
process wrote meanwhile, so runs side by side never lose each other's entries.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from clipstyler_opt.core.digests import file_sha256
from clipstyler_opt.core.errors import OutputError
from clipstyler_opt.core.files import exclusive_lock, read_regular, write_bytes
from clipstyler_opt.core.styles import StyleSpec, fuse_directions
from clipstyler_opt.method.ensemble import Member
from clipstyler_opt.method.losses import resize_for_backbone
from clipstyler_opt.method.pixels import pil_to_tensor
from clipstyler_opt.run.images import load_image

__all__ = ["CACHE_FOLDER", "CACHE_VERSION", "ScorerEmbeddings", "cache_folder_problem", "scorer_identity"]

log = logging.getLogger(__name__)
CACHE_FOLDER = ".clipopt-embeddings"
CACHE_VERSION = 2  # 1 keyed by the weights alone
_MAX_CACHE_BYTES = 1 << 30
_LOCATION_FIELDS = ("spec", "weights", "weights_origin")  # where the files are, not what they compute


def scorer_identity(backbone: Any, weights_sha256: str) -> dict[str, Any]:
    """What decides a scorer's image embeddings: its weights' SHA-256, its provenance (family,
    model, activation, image view) without file locations, and its parameters' names and shapes.

    Example:
        >>> layer = torch.nn.Linear(2, 3)
        >>> layer.provenance = {"model": "m", "weights": "/any/where.pt", "quick_gelu": True}
        >>> identity = scorer_identity(layer, "ab12")
        >>> identity["provenance"], identity["weights_sha256"], len(identity["architecture"])
        ({'model': 'm', 'quick_gelu': True}, 'ab12', 64)
    """
    provenance = {key: value for key, value in (getattr(backbone, "provenance", None) or {}).items()
                  if key not in _LOCATION_FIELDS}
    shapes = [[name, list(tensor.shape)] for name, tensor in backbone.state_dict().items()] \
        if isinstance(backbone, torch.nn.Module) else []
    architecture = hashlib.sha256(json.dumps(shapes).encode()).hexdigest()
    return json.loads(json.dumps({"weights_sha256": weights_sha256, "provenance": provenance,
                                  "architecture": architecture}, default=str))


def cache_folder_problem(root: Path) -> str | None:
    """Why the embedding cache cannot be kept in the result folder `root` (its cache folder is a
    link, which would send files elsewhere, or not a folder); None when it can.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> cache_folder_problem(root) is None
        True
        >>> _ = (root / CACHE_FOLDER).write_bytes(b"")  # a file where the folder goes
        >>> cache_folder_problem(root).endswith("is not a folder")
        True
    """
    path = root / CACHE_FOLDER
    if path.is_symlink():
        return f"{path}: is a symbolic link; nothing is written through a link"
    if path.exists() and not path.is_dir():
        return f"{path}: is not a folder"
    return None


@dataclass
class ScorerEmbeddings:
    """One scorer (an ensemble member), its template set, and its cache of image embeddings."""

    name: str
    member: Member
    templates: str
    weights_sha256: str | None
    folder: Path | None = None
    encoded: int = 0  # images encoded by the network in this process (cache misses)
    identity: dict[str, Any] | None = field(init=False, default=None)
    _images: dict[str, list[float]] = field(default_factory=dict)
    _dirty: bool = False
    _dimension: int | None = None

    def __post_init__(self) -> None:
        self.identity = None if self.weights_sha256 is None else scorer_identity(self.member.backbone,
                                                                                 self.weights_sha256)
        self._images = self._stored()

    def _stored(self) -> dict[str, list[float]]:
        """The cache file's entries for this scorer ({} when there is none or it is unreadable)."""
        path = self.cache_path
        if path is None or not path.is_file():
            return {}
        try:
            data = json.loads(read_regular(path, _MAX_CACHE_BYTES, follow_links=False))
            if data.get("version") == CACHE_VERSION and data.get("scorer_identity") == self.identity:
                return {k: v for k, v in data.get("images", {}).items()
                        if isinstance(v, list) and all(isinstance(x, float) for x in v)}
        except (OSError, ValueError, AttributeError, RecursionError):  # a FIFO or a damaged file too
            log.warning("%s: unreadable embedding cache; encoding again", path)
        return {}

    @property
    def spec_text(self) -> str:
        """The scorer's backbone spec as given (it may name a file by its full path: the record
        keeps it, labels never show it)."""
        return str(self.member.spec)

    @property
    def cache_path(self) -> Path | None:
        if self.folder is None or self.identity is None:
            return None
        key = hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()
        return self.folder / CACHE_FOLDER / f"{key[:16]}.json"

    @torch.no_grad()
    def image(self, path: Path, pixels: torch.Tensor | None = None) -> np.ndarray:
        """n(E_I(view(image))): the whole image squashed to the scorer's input size, as the loss sees it.

        Args:
            path: the image file (its SHA-256 is the cache key).
            pixels: the same file already decoded, (1, 3, H, W) in [0, 1], to spare a second decode.
        """
        key = file_sha256(path)
        cached = self._usable(self._images.get(key))
        if cached is not None:
            return cached
        backbone = self.member.backbone
        device = next((p.device for p in backbone.parameters()), torch.device("cpu")) \
            if isinstance(backbone, torch.nn.Module) else torch.device("cpu")
        pixels = (pil_to_tensor(load_image(path).rgb) if pixels is None else pixels).to(device)
        features = F.normalize(backbone.encode_image(resize_for_backbone(pixels, backbone)).float(), dim=-1)[0]
        vector = features.cpu().numpy().astype(np.float64)
        self._images[key] = [float(x) for x in vector]
        self._dirty, self.encoded = True, self.encoded + 1
        return vector

    def _usable(self, cached: list[float] | None) -> np.ndarray | None:
        """A cached entry, or None when it cannot be one of this scorer's embeddings: another
        dimension, a non-finite value, not of unit length (the cache is anyone's file)."""
        if cached is None:
            return None
        vector = np.asarray(cached, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            norm = float(np.linalg.norm(vector))
        if vector.shape != (self.dimension,) or not np.isfinite(vector).all() or abs(norm - 1.0) > 1e-3:
            return None
        return vector

    @property
    def dimension(self) -> int:
        """The joint space's dimension (from a text embedding, which shares it)."""
        if self._dimension is None:
            self._dimension = int(self.text("a Photo").shape[0])
        return self._dimension

    @torch.no_grad()
    def text(self, text: str) -> np.ndarray:
        """n(T(text)): the template-averaged text embedding."""
        return self.member.texts(text, self.templates).float().cpu().numpy().astype(np.float64)

    @torch.no_grad()
    def direction(self, spec: StyleSpec, source_text: str) -> np.ndarray:
        """ΔT of a (multi-style) prompt, as the `directions` fusion defines it."""
        embeddings = torch.stack([self.member.texts(t, self.templates).float() for t in spec.texts])
        source = self.member.texts(source_text, self.templates).float()
        return fuse_directions(embeddings, spec.weights, source).cpu().numpy().astype(np.float64)

    def save(self) -> None:
        """Write the cache if anything was encoded (atomically; a failure only costs a later re-encode)."""
        path = self.cache_path
        if path is None or not self._dirty:
            return
        try:
            path.parent.mkdir(exist_ok=True)
            with exclusive_lock(path.with_suffix(".lock")):
                self._images = {**self._stored(), **self._images}  # what another process added meanwhile
                payload: dict[str, Any] = {"version": CACHE_VERSION, "scorer": self.name,
                                           "scorer_identity": self.identity, "images": self._images}
                write_bytes(path, json.dumps(payload).encode())
            self._dirty = False
        except (OSError, OutputError) as exc:
            log.warning("%s: cannot write the embedding cache (%s)", path, exc)

