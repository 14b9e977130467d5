"""The measuring process of `clipstyler_opt.tools.startup`: started fresh by `measure_startup`,
it times what `clipopt run` pays before its first step (imports, the command line included,
weights, text setup) and prints one JSON line. It lives with the command line because it imports
it; run it only through `measure_startup`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from clipstyler_opt.core.errors import ClipoptError
from clipstyler_opt.tools.startup import TUPLE_FIELDS


def measure(request: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    import open_clip  # noqa: F401  (imported lazily by the backbone factory, but paid by every run)
    import torch  # noqa: F401  (timed: the imports a run pays)

    import clipstyler_opt.cli  # noqa: F401
    from clipstyler_opt.core.config import StyleConfig
    from clipstyler_opt.core.styles import StyleSpec
    from clipstyler_opt.method.ensemble import member_settings
    from clipstyler_opt.method.textcache import text_cache_dir
    from clipstyler_opt.run.engine import Stylizer
    from clipstyler_opt.run.images import load_image
    imported = time.perf_counter()

    fields = dict(request["fields"])
    for name, kind in TUPLE_FIELDS.items():
        fields[name] = tuple(kind(v) for v in fields.get(name, ()))
    if fields.get("vgg_checkpoint"):
        fields["vgg_checkpoint"] = Path(fields["vgg_checkpoint"])
    # The values are the parent's resolved ones: a preset must not change any of them again.
    config = StyleConfig(**fields, explicit_fields=set(fields) - {"preset"})
    stylizer = Stylizer(config)
    loaded = time.perf_counter()

    def cache_entries() -> int:
        folder = text_cache_dir()
        return sum(1 for _ in folder.iterdir()) if folder.is_dir() else 0

    before = cache_entries()
    texts = (*StyleSpec.parse(request["prompt"]).texts, config.source_text)
    for member in stylizer.members:
        templates = member_settings(member.spec, config)["templates"]
        for text in texts:
            member.texts(text, templates)  # kept in memory: the run below finds them there
    text_done = time.perf_counter()
    after = cache_entries()
    result = stylizer.stylize(load_image(Path(request["image"])), request["prompt"], steps=1)
    return {"imports_s": imported - started, "weights_s": loaded - imported, "text_s": text_done - loaded,
            "other_setup_s": result.timings["setup_s"], "text_cache_entries": [before, after]}


if __name__ == "__main__":
    try:
        print(json.dumps(measure(json.loads(sys.stdin.read()))))
    except ClipoptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
