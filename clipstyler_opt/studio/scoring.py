""""Score it": the metrics of `clipopt eval` for one studio result, with the independent scorer.

The scorer is the studio's `--scorer` spec, or eval's default rule: a default backbone that did
not optimise the result. The evaluator (scorer, VGG19, LPIPS when available) is loaded once and
kept while the scorer stays the same. Scoring runs in the device's queue like a run, one at a time.

Example (tiny models; see tests/test_studio.py):
    scorer = ResultScorer(StyleConfig(), "ViT-B-16/openai")
    scorer.score(Path("studio/chelsea-oil.png"))   # {"scorer": ..., "metrics": {...}, ...}
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipstyler_opt.core.config import StyleConfig

if TYPE_CHECKING:
    from clipstyler_opt.evaluate import Evaluator

__all__ = ["ResultScorer"]


class ResultScorer:
    """Scores result images with `clipopt eval`'s metrics; `base` gives the weights options."""

    def __init__(self, base: StyleConfig, scorer: str | None = None) -> None:
        self.base, self.scorer = base, scorer
        self._kept: tuple[str, Evaluator] | None = None

    def score(self, output: Path) -> dict[str, Any]:
        """The eval row of `output` (its content image and prompt from its record): the scorer,
        each metric (None where unavailable, with the reason), and eval's warnings."""
        from clipstyler_opt.evaluate import EvalOptions, Evaluator, collect_targets, evaluate_targets
        from clipstyler_opt.evaluate.scorer import labelled_scorers

        targets, notes = collect_targets([output])
        requested = (self.scorer,) if self.scorer else ()
        options = EvalOptions(scorers=requested, clip_model_config=tuple(self.base.clip_model_config),
                              vgg_checkpoint=self.base.vgg_checkpoint, cache_dir=self.base.cache_dir,
                              offline=self.base.offline, device=self.base.device)
        spec = str(labelled_scorers(requested, [target.optimisers or () for target in targets])[0][1])
        if self._kept is None or self._kept[0] != spec:
            self._kept = None  # the old evaluator goes before the new one loads
            self._kept = (spec, Evaluator.for_targets(options, targets))
        report = evaluate_targets(targets, self._kept[1], notes)
        document = report.to_json()
        row = document["rows"][0]
        return {"scorer": document["scorer"].get("spec"), "metrics": row["metrics"],
                "unavailable": row["unavailable"], "directions": document["directions"],
                "scorer_was_optimiser": row["scorer_was_optimiser"], "warnings": document["warnings"]}
