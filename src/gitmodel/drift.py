"""Population stability index (PSI): how far one distribution moved from another.

Pure numpy, and the one PSI of the project: the metrics (predicted vs expected
labels), diff and the gate (baseline vs candidate outputs) and the drift
monitors (eval-time vs production outputs) all call it.

    PSI = sum over bins of (actual_share - expected_share) * ln(actual_share / expected_share)

Smoothing. A bin empty on one side would make ln(a / e) infinite, and any
fixed floor on the share (1e-4, 1e-6...) would decide the value: an
eval set label that the model never predicts would weigh whatever the floor
says. Instead every bin's count gets :data:`SMOOTHING` added on both sides
before shares are taken (additive smoothing with the Jeffreys prior, 0.5 per
bin), so an empty bin weighs as half an observation, whatever the sample size:
the bigger the sample, the smaller that half counts. The text
:data:`SMOOTHING_TEXT` is printed beside every PSI shown to a user.

Too little data. With few samples per bin, PSI measures the sampling noise
rather than a shift: :func:`measure_counts` / :func:`measure_values` then say
"insufficient data" (no value, no band) when either side has fewer than
:data:`MIN_PER_BIN` samples per bin on average.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import numpy as np

# Added to every bin's count on both sides (Jeffreys prior).
SMOOTHING = 0.5
SMOOTHING_TEXT = f"additive smoothing: +{SMOOTHING:g} per bin"

# A side with fewer samples than this per bin on average gives no PSI: the
# usual rule of thumb for a binned comparison (as for a chi-square test).
MIN_PER_BIN = 5

# The bands used across credit-risk and ML monitoring practice.
PSI_MODERATE = 0.1
PSI_SIGNIFICANT = 0.2
INSUFFICIENT = "insufficient data"

Band = Literal["stable", "moderate", "significant"]


def _psi_from_counts(expected: np.ndarray, actual: np.ndarray, smoothing: float) -> float:
    """PSI of two aligned count vectors (same bins, same order)."""
    if np.any(expected < 0) or np.any(actual < 0):
        raise ValueError("PSI needs non-negative counts")
    if not smoothing >= 0:
        raise ValueError(f"smoothing must be >= 0, not {smoothing}")
    if float(expected.sum()) <= 0 or float(actual.sum()) <= 0:
        raise ValueError("PSI needs two non-empty distributions")
    # a bin empty on both sides says nothing about a shift: it is left out, so
    # that listing a category neither side has cannot move the value
    keep = (expected > 0) | (actual > 0)
    e, a = expected[keep] + smoothing, actual[keep] + smoothing
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def _aligned(expected: Mapping[str, int | float], actual: Mapping[str, int | float]) -> tuple[np.ndarray, np.ndarray]:
    categories = sorted(set(expected) | set(actual), key=str)  # sorted: a stable summation order
    e = np.array([float(expected.get(c, 0)) for c in categories], dtype=float)
    a = np.array([float(actual.get(c, 0)) for c in categories], dtype=float)
    return e, a


def psi_counts(
    expected: Mapping[str, int | float],
    actual: Mapping[str, int | float],
    smoothing: float = SMOOTHING,
) -> float:
    """PSI of two categorical distributions given as counts per category.

    Categories are the union of both mappings; a category missing from one side
    counts 0 there; a category at 0 on both sides is left out. ``smoothing`` is
    added to every category's count on both sides before shares are taken.
    Raises ValueError when either side is empty (total 0) or holds a negative count.
    """
    e, a = _aligned(expected, actual)
    return _psi_from_counts(e, a, smoothing)


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
    smoothing: float = SMOOTHING,
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
    return _psi_from_counts(e, a, smoothing)


def psi_band(psi: float) -> Band:
    """"stable" below 0.1, "moderate" from 0.1 to below 0.2, "significant" from 0.2."""
    if math.isnan(psi):
        raise ValueError("PSI is NaN")
    if psi < PSI_MODERATE:
        return "stable"
    if psi < PSI_SIGNIFICANT:
        return "moderate"
    return "significant"


@dataclass(frozen=True)
class PSI:
    """A PSI as shown to a user: the value and its band, or "insufficient data" (value None)."""

    value: float | None
    band: str                  # stable | moderate | significant | insufficient data
    bins: int                  # bins the expected side can fill (categories, or quantile bins)
    n_expected: int
    n_actual: int
    smoothing: str = SMOOTHING_TEXT

    @property
    def sufficient(self) -> bool:
        return self.value is not None

    def to_dict(self) -> dict:
        return {"psi": self.value, "band": self.band, "bins": self.bins, "n_expected": self.n_expected,
                "n_actual": self.n_actual, "smoothing": self.smoothing}


def _measured(e: np.ndarray, a: np.ndarray, bins: int) -> PSI:
    n_e, n_a = int(round(e.sum())), int(round(a.sum()))
    if min(n_e, n_a) < MIN_PER_BIN * max(bins, 1):
        return PSI(None, INSUFFICIENT, bins, n_e, n_a)
    value = round(_psi_from_counts(e, a, SMOOTHING), 6) + 0.0
    return PSI(value, psi_band(value), bins, n_e, n_a)


def measure_counts(expected: Mapping[str, int | float], actual: Mapping[str, int | float]) -> PSI:
    """:func:`psi_counts` with the "insufficient data" rule: bins are the categories of either side."""
    e, a = _aligned(expected, actual)
    if float(e.sum()) <= 0 or float(a.sum()) <= 0:
        raise ValueError("PSI needs two non-empty distributions")
    return _measured(e, a, int(np.count_nonzero((e > 0) | (a > 0))))


def measure_values(expected: Sequence[float], actual: Sequence[float], bins: int = 10) -> PSI:
    """:func:`psi_values` with the "insufficient data" rule: bins are the quantile bins of ``expected``
    (the outer bins, empty in ``expected`` by construction, do not count)."""
    edges = bin_edges(expected, bins)
    e = bin_counts(_finite_array(expected, "expected"), edges)
    a = bin_counts(_finite_array(actual, "actual"), edges)
    return _measured(e, a, max(len(edges) - 1, 1))


# -- drift monitoring: PSI of two profiles' counts, in the monitor's bands ------------------------------

WATCH = PSI_MODERATE          # params.yaml drift.watch
ALERT = PSI_SIGNIFICANT       # params.yaml drift.alert
MIN_SAMPLES = 100             # params.yaml drift.min_samples: fewer on a side, and the PSI is flagged
NO_DATA = "no data"
DRIFT_BANDS = ("stable", "watch", "alert")


def psi_aligned(expected: Sequence[float], actual: Sequence[float], smoothing: float = SMOOTHING) -> float:
    """PSI of two count vectors over the same bins, in the same order (two profiles of one baseline)."""
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.shape != a.shape:
        raise ValueError(f"PSI needs counts over the same bins ({e.size} vs {a.size})")
    return _psi_from_counts(e, a, smoothing)


def drift_band(psi: float, watch: float = WATCH, alert: float = ALERT) -> str:
    """"stable" below ``watch``, "watch" from it to below ``alert``, "alert" from ``alert``. A NaN is an
    error, never a band: it would read as "no drift"."""
    if psi is None or math.isnan(psi):
        raise ValueError("PSI is NaN")
    if psi < watch:
        return "stable"
    return "watch" if psi < alert else "alert"


@dataclass(frozen=True)
class SignalDrift:
    """One signal's PSI between a baseline's counts and a window's, in the monitor's bands."""

    value: float | None          # None: one side holds no value of the signal ("no data")
    band: str                    # stable | watch | alert | no data
    n_expected: int
    n_actual: int
    few_samples: bool            # a side with fewer than min_samples: the figure is noisy
    smoothing: str = SMOOTHING_TEXT

    def to_dict(self) -> dict:
        return {"psi": self.value, "band": self.band, "n_expected": self.n_expected, "n_actual": self.n_actual,
                "few_samples": self.few_samples, "smoothing": self.smoothing}


def measure_aligned(expected: Sequence[float], actual: Sequence[float], *, watch: float = WATCH,
                    alert: float = ALERT, min_samples: int = MIN_SAMPLES) -> SignalDrift:
    """:func:`psi_aligned` with its band; an empty side gives "no data", never a PSI of 0."""
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    n_e, n_a = int(round(e.sum())), int(round(a.sum()))
    few = min(n_e, n_a) < min_samples
    if n_e == 0 or n_a == 0:
        return SignalDrift(None, NO_DATA, n_e, n_a, few)
    value = round(psi_aligned(e, a), 6) + 0.0
    return SignalDrift(value, drift_band(value, watch, alert), n_e, n_a, few)
