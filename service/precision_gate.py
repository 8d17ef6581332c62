"""The accuracy gate: a reduced precision serves only if it gives float32's answers on held-out images.

Agreement is top-1 agreement with the float32 model on the same preprocessed images, counted twice:

- ``confident``: over the images where float32's top-1 probability leads its second by at least
  ``margin`` (default 0.1): there a correct low-precision model has no excuse to differ;
- ``overall``: over all images (near-ties may flip; a few flips are the known cost of int8/bf16).

A precision passes when ``confident >= min_confident`` (default 0.99) and ``overall >= min_overall``
(default 0.95). ``GATE_MARGIN`` / ``GATE_MIN_CONFIDENT`` / ``GATE_MIN_OVERALL`` set them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from service.errors import ModelLoadError


class PrecisionRejected(ModelLoadError):
    """An explicitly requested ``MODEL_DTYPE`` failed the accuracy gate (``python -m service`` exits 9)."""

    exit_status = 9


@dataclass(frozen=True)
class GateThresholds:
    """``margin``: float32 top-1 minus top-2 probability for an image to count as confident;
    ``min_confident`` / ``min_overall``: required agreement fractions (0-1)."""

    margin: float = 0.1
    min_confident: float = 0.99
    min_overall: float = 0.95


@dataclass(frozen=True)
class Agreement:
    """Top-1 agreement of one precision with float32 on ``images`` held-out images."""

    precision: str
    images: int
    agree: int
    confident_images: int
    confident_agree: int
    distinct_float32_classes: int
    max_abs_probability_difference: float

    @property
    def overall(self) -> float:
        """Fraction of all images with float32's top-1 (1.0 for no images)."""
        return self.agree / self.images if self.images else 1.0

    @property
    def confident(self) -> float:
        """Fraction of the confident images with float32's top-1 (1.0 when there are none)."""
        return self.confident_agree / self.confident_images if self.confident_images else 1.0

    def passes(self, thresholds: GateThresholds) -> bool:
        """Both fractions at or above their thresholds."""
        return self.confident >= thresholds.min_confident and self.overall >= thresholds.min_overall

    def describe(self) -> str:
        """E.g. ``int8 agrees with float32 on 64/64 images (100.0 %), 60/60 confident (100.0 %)``."""
        return (f"{self.precision} agrees with float32 on {self.agree}/{self.images} held-out images "
                f"({100 * self.overall:.1f} %), {self.confident_agree}/{self.confident_images} confident "
                f"ones ({100 * self.confident:.1f} %); {self.distinct_float32_classes} distinct float32 "
                f"classes, max |dp| {self.max_abs_probability_difference:.3f}")

    def to_dict(self) -> dict:
        """The counts plus ``overall`` and ``confident`` fractions (for the calibration report)."""
        return {**asdict(self), "overall": self.overall, "confident": self.confident}


def agreement(precision: str, reference: torch.Tensor, candidate: torch.Tensor,
              margin: float = GateThresholds.margin) -> Agreement:
    """Compare probabilities ``[N, C]`` of a candidate precision with float32's ``reference`` ``[N, C]``.

    Raises ``ValueError`` when the shapes differ.
    """
    if reference.shape != candidate.shape:
        raise ValueError(f"shapes differ: float32 {list(reference.shape)}, {precision} "
                         f"{list(candidate.shape)}")
    reference, candidate = reference.float(), candidate.float()
    top2 = reference.topk(min(2, reference.shape[1]), dim=1).values
    lead = top2[:, 0] - (top2[:, 1] if top2.shape[1] > 1 else 0)
    confident = lead >= margin
    same = reference.argmax(1) == candidate.argmax(1)
    return Agreement(
        precision=precision,
        images=int(reference.shape[0]),
        agree=int(same.sum()),
        confident_images=int(confident.sum()),
        confident_agree=int((same & confident).sum()),
        distinct_float32_classes=len(set(reference.argmax(1).tolist())),
        max_abs_probability_difference=float((reference - candidate).abs().max()) if reference.numel()
        else 0.0,
    )
