"""PSI helpers: known values worked out by hand from the formula."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gitmodel.drift import (INSUFFICIENT, MIN_PER_BIN, SMOOTHING, SMOOTHING_TEXT, bin_counts, bin_edges,
                            measure_counts, measure_values, psi_band, psi_counts, psi_values)

A = SMOOTHING


def term(actual_share: float, expected_share: float) -> float:
    return (actual_share - expected_share) * math.log(actual_share / expected_share)


def smoothed(counts: list[float]) -> list[float]:
    """Shares after additive smoothing: (count + 0.5) / (total + 0.5 * bins)."""
    total = sum(counts) + A * len(counts)
    return [(c + A) / total for c in counts]


def psi_by_hand(expected: list[float], actual: list[float]) -> float:
    return sum(term(a, e) for a, e in zip(smoothed(actual), smoothed(expected)))


def test_psi_counts_identical_is_zero():
    assert psi_counts({"a": 30, "b": 70}, {"a": 30, "b": 70}) == pytest.approx(0.0, abs=1e-15)
    # the same shares from a sample ten times smaller: the smoothing is half an observation per bin,
    # so it weighs more in the small sample, and the gap is small
    assert psi_counts({"a": 3, "b": 7}, {"a": 30, "b": 70}) == pytest.approx(psi_by_hand([3, 7], [30, 70]))
    assert psi_counts({"a": 3, "b": 7}, {"a": 30, "b": 70}) < 0.002


def test_psi_counts_known_value():
    # 50/50 -> 25/75, smoothed: 50.5/101 each vs 25.5/101, 75.5/101
    value = psi_counts({"a": 50, "b": 50}, {"a": 25, "b": 75})
    assert value == pytest.approx(psi_by_hand([50, 50], [25, 75]))
    # unsmoothed it is 0.25 ln 2 + 0.25 ln 1.5 = 0.274653: smoothing moves a well-filled PSI very little
    assert value == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5), abs=0.01)
    assert psi_counts({"a": 50, "b": 50}, {"a": 25, "b": 75}, smoothing=0) == pytest.approx(
        0.25 * math.log(2) + 0.25 * math.log(1.5))


def test_psi_counts_three_labels():
    value = psi_counts({"a": 2, "b": 2, "c": 2}, {"a": 2, "b": 3, "c": 1})
    assert value == pytest.approx(psi_by_hand([2, 2, 2], [2, 3, 1]))
    assert psi_counts({"a": 2, "b": 2, "c": 2}, {"a": 2, "b": 3, "c": 1}, smoothing=0) == pytest.approx(
        math.log(3) / 6)


def test_psi_counts_empty_bin_is_smoothed_not_floored():
    value = psi_counts({"a": 10, "b": 0}, {"a": 5, "b": 5})
    assert value == pytest.approx(term(5.5 / 11, 10.5 / 11) + term(5.5 / 11, 0.5 / 11))


def test_never_predicted_label_weighs_half_an_observation():
    """Three labels, "neutral" expected 10 times out of 100 and never predicted: its term is what
    half an observation makes it, not what an arbitrary floor on the share decides."""
    expected = {"positive": 45, "negative": 45, "neutral": 10}
    predicted = {"positive": 52, "negative": 48, "neutral": 0}
    value = psi_counts(expected, predicted)
    e, a = smoothed([45, 45, 10]), smoothed([52, 48, 0])
    neutral = term(a[2], e[2])
    assert value == pytest.approx(sum(term(x, y) for x, y in zip(a, e)))
    assert neutral == pytest.approx(term(0.5 / 101.5, 10.5 / 101.5))
    # no floor decides it (a share floor of 1e-3 or 1e-6 gives 0.468 or 1.163 on the same data): a label
    # expected 10 % of the time and never answered is a real shift, and it dominates for that reason
    assert round(value, 4) == 0.3117 and neutral / value == pytest.approx(0.96, abs=0.01)
    band = measure_counts(expected, predicted)
    assert band.value == pytest.approx(round(value, 6)) and band.band == "significant"
    assert band.smoothing == SMOOTHING_TEXT == "additive smoothing: +0.5 per bin"


def test_psi_counts_union_of_categories():
    # a category present on one side only counts 0 on the other
    value = psi_counts({"a": 1}, {"b": 1})
    assert value == pytest.approx(psi_by_hand([1, 0], [0, 1]))
    assert value == psi_counts({"a": 1, "b": 0}, {"a": 0, "b": 1})


def test_psi_counts_category_empty_on_both_sides_adds_nothing():
    assert psi_counts({"a": 1, "b": 1, "z": 0}, {"a": 1, "b": 3}) == pytest.approx(
        psi_counts({"a": 1, "b": 1}, {"a": 1, "b": 3}))


def test_psi_counts_custom_smoothing():
    assert psi_counts({"a": 1}, {"b": 1}, smoothing=1) == pytest.approx(term(1 / 3, 2 / 3) + term(2 / 3, 1 / 3))


@pytest.mark.parametrize("expected, actual", [({}, {"a": 1}), ({"a": 0}, {"a": 1}), ({"a": 1}, {})])
def test_psi_counts_refuses_empty_distribution(expected, actual):
    with pytest.raises(ValueError, match="non-empty"):
        psi_counts(expected, actual)


def test_psi_counts_refuses_negative_counts():
    with pytest.raises(ValueError, match="non-negative"):
        psi_counts({"a": -1, "b": 2}, {"a": 1})


def test_bin_edges_are_distinct_quantiles():
    assert bin_edges(range(10), bins=2).tolist() == [0.0, 4.5, 9.0]
    # eight zeros then 1, 2: quantile q sits at position 9q, so 0..70 % are all 0
    # and merge into one edge; 80 % -> 0.2, 90 % -> 1.1, 100 % -> 2
    assert bin_edges([0] * 8 + [1, 2], bins=10).tolist() == pytest.approx([0.0, 0.2, 1.1, 2.0])


def test_bin_counts_layout():
    edges = np.array([0.0, 4.5, 9.0])
    # below 0 | [0, 4.5) | [4.5, 9] | above 9
    assert bin_counts([-1, 0, 4.4, 4.5, 9, 9.1], edges).tolist() == [1, 2, 2, 1]


def test_bin_counts_constant_reference():
    # one edge: below | exactly the value | above
    assert bin_counts([0, 1, 1, 2], np.array([1.0])).tolist() == [1, 2, 1]


def test_psi_values_identical_is_zero():
    data = [0.1, 0.5, 0.5, 0.9, 0.3, 0.7]
    assert psi_values(data, data) == pytest.approx(0.0, abs=1e-15)


def test_psi_values_known_value():
    # edges 0, 4.5, 9: expected counts 0, 5, 5, 0; actual 0, 5, 4, 1 (100 is beyond the range);
    # the bin below is empty on both sides and left out
    value = psi_values(list(range(10)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 100], bins=2)
    assert value == pytest.approx(psi_by_hand([5, 5, 0], [5, 4, 1]))


def test_psi_values_constant_reference_detects_shift():
    assert psi_values([1.0] * 10, [1.0] * 5) == pytest.approx(0.0, abs=1e-15)
    # all mass moves from the "== 1" bin to the "above" bin
    shifted = psi_by_hand([10, 0], [0, 10])
    assert shifted > 2
    assert psi_values([1.0] * 10, [2.0] * 10) == pytest.approx(shifted)
    assert psi_values([1.0] * 10, [0.0] * 10) == pytest.approx(shifted)


def test_psi_values_heavy_duplicates():
    reference = [0] * 80 + list(range(1, 21))
    assert psi_values(reference, reference) == pytest.approx(0.0, abs=1e-15)
    assert psi_values(reference, [0] * 50 + list(range(1, 51))) > 0.2


def test_psi_values_refuses_bad_input():
    with pytest.raises(ValueError, match="at least one expected"):
        psi_values([], [1.0])
    with pytest.raises(ValueError, match="at least one actual"):
        psi_values([1.0], [])
    with pytest.raises(ValueError, match="finite"):
        psi_values([1.0, float("nan")], [1.0])
    with pytest.raises(ValueError, match="bins"):
        psi_values([1.0], [1.0], bins=0)


@pytest.mark.parametrize("psi, band", [
    (0.0, "stable"), (0.099999, "stable"), (0.1, "moderate"), (0.15, "moderate"),
    (0.2, "significant"), (5.0, "significant"),
])
def test_psi_band(psi, band):
    assert psi_band(psi) == band


def test_measure_counts_insufficient_data():
    # 3 labels need 15 examples a side
    few = measure_counts({"a": 5, "b": 5, "c": 4}, {"a": 14, "b": 0, "c": 0})
    assert (few.value, few.band, few.bins) == (None, INSUFFICIENT, 3)
    assert few.to_dict() == {"psi": None, "band": "insufficient data", "bins": 3, "n_expected": 14,
                             "n_actual": 14, "smoothing": SMOOTHING_TEXT}
    enough = measure_counts({"a": 5, "b": 5, "c": 5}, {"a": 15, "b": 0, "c": 0})
    assert enough.sufficient and enough.band == "significant"


def test_measure_values_insufficient_data():
    # ten quantile bins need 50 values a side
    assert measure_values(list(range(49)), list(range(60))).band == INSUFFICIENT
    assert measure_values(list(range(60)), list(range(49))).band == INSUFFICIENT
    assert measure_values(list(range(60)), list(range(60))).value == 0.0
    assert MIN_PER_BIN == 5
