"""service.postprocess: probabilities [N, C] -> top-k with labels, and the V2 classification strings."""

from __future__ import annotations

import numpy as np
import torch

from service.postprocess import Prediction, classification_strings, top_k

LABELS = ["cat", "dog", "fox", "owl"]
PROBABILITIES = torch.tensor([[0.1, 0.6, 0.2, 0.1], [0.05, 0.05, 0.1, 0.8]])


def test_top_k_per_row_score_descending_with_labels():
    rows = top_k(PROBABILITIES, LABELS, 2)
    assert [[(p.label, p.index) for p in row] for row in rows] == [[("dog", 1), ("fox", 2)],
                                                                    [("owl", 3), ("fox", 2)]]
    assert rows[0][0] == Prediction("dog", 1, float(PROBABILITIES[0, 1]))


def test_top_k_larger_than_the_class_count_returns_every_class():
    [row] = top_k(torch.tensor([[0.15, 0.6, 0.2, 0.05]]), LABELS, 10)
    assert [p.index for p in row] == [1, 2, 0, 3]


def test_classification_strings_are_score_index_label_and_ties_keep_the_lower_index():
    strings = classification_strings(np.array([[0.25, 0.5, 0.25, 0.0]], dtype=np.float32), LABELS, 3)
    assert strings == [["0.500000:1:dog", "0.250000:0:cat", "0.250000:2:fox"]]
