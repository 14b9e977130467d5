"""content: the VGG19 content loss, against features of the content image computed once.

    content = Σ_{relu4_2, relu5_2} MSE(VGG(output), VGG(content))

Its weight follows --style-strength (λ_content · 8^(1 − 2S)).

Example:
    >>> import torch
    >>> from clipstyler_opt.method.objective.base import ClipViews
    >>> from torch import nn
    >>> class Features(nn.Module):  # a stand-in content network: the image itself as one layer
    ...     def forward(self, x):
    ...         return [x]
    >>> term = ContentTerm(Features(), torch.zeros(1, 3, 2, 2))
    >>> term(Step(torch.ones(1, 3, 2, 2), ClipViews([]))).item()
    1.0
"""

from __future__ import annotations

import torch
from torch import nn

from clipstyler_opt.method.losses import content_loss
from clipstyler_opt.method.objective.base import Step, Term
from clipstyler_opt.method.objective.registry import LossTerm, TermContext

__all__ = ["TERM", "ContentTerm"]


class ContentTerm(Term):

    def __init__(self, vgg: nn.Module, content: torch.Tensor) -> None:
        super().__init__()
        self.vgg = vgg
        with torch.no_grad():
            self.reference = [f.detach() for f in vgg(content)]

    def forward(self, step: Step) -> torch.Tensor:
        return content_loss(self.vgg(step.output), self.reference)


def _build(context: TermContext) -> Term:
    return ContentTerm(context.vgg, context.content)


TERM = LossTerm("content", "lambda_content", "content", ".3g", _build, follows_style_strength=True)
