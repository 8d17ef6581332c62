"""Postprocessing: probabilities ``[N, C]`` (the model's softmax) -> top-k classes with their labels.

``top_k`` answers ``/predict`` (``Prediction`` objects); ``classification_strings`` answers the Open
Inference Protocol classification extension (``"<score>:<index>:<label>"``, Triton's format,
``protocol/extension_classification.md``). Both order by score, descending
(``classification_strings`` breaks ties by the lower index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Prediction:
    """One top-k entry: class ``index``, its ``label`` and softmax probability ``score`` in [0, 1]."""

    label: str
    index: int
    score: float


def top_k(probabilities: torch.Tensor, labels: list[str], k: int) -> list[list[Prediction]]:
    """Probabilities ``[N, C]`` -> per row the ``k`` (at most C) most likely classes, score descending.

    ``labels[i]`` names class ``i`` (``len(labels) == C``).
    """
    scores, indices = torch.topk(probabilities, k=min(k, probabilities.shape[-1]), dim=-1)
    return [[Prediction(labels[i], i, float(s)) for s, i in zip(row_s, row_i, strict=True)]
            for row_s, row_i in zip(scores.tolist(), indices.tolist(), strict=True)]


def classification_strings(probabilities: np.ndarray, labels: list[str], k: int) -> list[list[str]]:
    """Probabilities ``[N, C]`` -> per row the top-``k`` as ``"<score>:<index>:<label>"`` strings."""
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [[f"{row[i]:f}:{i}:{labels[i]}" for i in idx]
            for row, idx in zip(probabilities, order, strict=True)]
