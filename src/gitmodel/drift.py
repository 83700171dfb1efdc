"""Population stability index (PSI): how far one distribution moved from another.

Pure numpy, shared by the metrics (predicted vs expected labels), diff and the
drift monitors (eval-time vs production outputs).

    PSI = sum over bins of (actual_share - expected_share) * ln(actual_share / expected_share)

PSI is 0 for identical distributions and grows with the shift; it is
symmetric in its two arguments only up to the flooring described below.
"""
from __future__ import annotations

import math
from typing import Literal, Mapping, Sequence

import numpy as np

# A share of 0 would make ln(a / e) infinite: one label that the eval set never
# expects but the model predicts once would outweigh every other shift. Zero
# shares are raised to this floor (shares are not renormalised afterwards).
DEFAULT_EPSILON = 1e-4

# The bands used across credit-risk and ML monitoring practice.
PSI_MODERATE = 0.1
PSI_SIGNIFICANT = 0.2

Band = Literal["stable", "moderate", "significant"]


def _psi_from_counts(expected: np.ndarray, actual: np.ndarray, epsilon: float) -> float:
    """PSI of two aligned count vectors (same bins, same order)."""
    if np.any(expected < 0) or np.any(actual < 0):
        raise ValueError("PSI needs non-negative counts")
    e_total, a_total = float(expected.sum()), float(actual.sum())
    if e_total <= 0 or a_total <= 0:
        raise ValueError("PSI needs two non-empty distributions")
    e = np.maximum(expected / e_total, epsilon)
    a = np.maximum(actual / a_total, epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_counts(
    expected: Mapping[str, int | float],
    actual: Mapping[str, int | float],
    epsilon: float = DEFAULT_EPSILON,
) -> float:
    """PSI of two categorical distributions given as counts (or weights) per category.

    Categories are the union of both mappings; a category missing from one side
    counts 0 there. Each side is turned into shares, and a share of 0 is floored
    at ``epsilon`` (so a brand-new category shows as a large but finite shift).
    Raises ValueError when either side is empty (total 0) or holds a negative count.
    """
    categories = sorted(set(expected) | set(actual))  # sorted: a stable summation order
    e = np.array([float(expected.get(c, 0)) for c in categories], dtype=float)
    a = np.array([float(actual.get(c, 0)) for c in categories], dtype=float)
    return _psi_from_counts(e, a, epsilon)


def _finite_array(values: Sequence[float], side: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    if arr.size == 0:
        raise ValueError(f"PSI needs at least one {side} value")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"PSI needs finite {side} values (found NaN or infinity)")
    return arr


def bin_edges(expected: Sequence[float], bins: int = 10) -> np.ndarray:
    """Distinct quantile cut points of ``expected`` (numpy's linear quantiles).

    Duplicate quantiles (many equal values) collapse into one edge, so heavily
    repeated values get one bin rather than several empty ones.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    arr = _finite_array(expected, "expected")
    return np.unique(np.quantile(arr, np.linspace(0.0, 1.0, bins + 1)))


def bin_counts(values: Sequence[float], edges: np.ndarray) -> np.ndarray:
    """Counts of ``values`` in the bins that ``edges`` define.

    Bins: below the first edge; [e0, e1), ..., [e(k-2), e(k-1)] (the last one
    closed, so the expected maximum is inside); above the last edge. With one
    edge (constant expected data) the middle bin holds exactly that value, so
    any move up or down shows. Values outside the expected range land in the
    outer bins, which the expected data leaves empty: a shift beyond the range
    the reference ever saw is what drift monitoring must not miss.
    """
    arr = np.asarray(values, dtype=float).ravel()
    k = len(edges)
    middle = max(k - 1, 1)
    idx = np.searchsorted(edges, arr, side="right")
    idx[arr == edges[-1]] = middle
    idx[arr > edges[-1]] = middle + 1
    return np.bincount(idx, minlength=middle + 2).astype(float)


def psi_values(
    expected: Sequence[float],
    actual: Sequence[float],
    bins: int = 10,
    epsilon: float = DEFAULT_EPSILON,
) -> float:
    """PSI of a continuous quantity (confidence, output length, latency...).

    Bins are the ``bins`` quantiles of ``expected`` (duplicates merged, see
    :func:`bin_edges`) plus one open bin on each side for values outside the
    expected range (see :func:`bin_counts`). Raises ValueError on empty or
    non-finite input.
    """
    edges = bin_edges(expected, bins)
    e = bin_counts(_finite_array(expected, "expected"), edges)
    a = bin_counts(_finite_array(actual, "actual"), edges)
    return _psi_from_counts(e, a, epsilon)


def psi_band(psi: float) -> Band:
    """"stable" below 0.1, "moderate" from 0.1 to below 0.2, "significant" from 0.2."""
    if math.isnan(psi):
        raise ValueError("PSI is NaN")
    if psi < PSI_MODERATE:
        return "stable"
    if psi < PSI_SIGNIFICANT:
        return "moderate"
    return "significant"
