"""PSI helpers: known values worked out by hand from the formula."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gitmodel.drift import DEFAULT_EPSILON, bin_counts, bin_edges, psi_band, psi_counts, psi_values

EPS = DEFAULT_EPSILON


def term(actual_share: float, expected_share: float) -> float:
    return (actual_share - expected_share) * math.log(actual_share / expected_share)


def test_psi_counts_identical_is_zero():
    assert psi_counts({"a": 3, "b": 7}, {"a": 30, "b": 70}) == pytest.approx(0.0, abs=1e-15)


def test_psi_counts_known_value():
    # 50/50 -> 25/75: 0.25 * ln 2 + 0.25 * ln 1.5
    value = psi_counts({"a": 50, "b": 50}, {"a": 25, "b": 75})
    assert value == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert round(value, 6) == 0.274653


def test_psi_counts_three_labels():
    # uniform thirds -> 2/6, 3/6, 1/6: the metrics' label_psi example, ln(3) / 6
    value = psi_counts({"a": 2, "b": 2, "c": 2}, {"a": 2, "b": 3, "c": 1})
    assert value == pytest.approx(math.log(3) / 6)


def test_psi_counts_zero_share_is_floored_at_epsilon():
    value = psi_counts({"a": 10, "b": 0}, {"a": 5, "b": 5})
    assert value == pytest.approx(term(0.5, 1.0) + term(0.5, EPS))


def test_psi_counts_union_of_categories():
    # a category present on one side only counts 0 on the other
    value = psi_counts({"a": 1}, {"b": 1})
    assert value == pytest.approx(term(EPS, 1.0) + term(1.0, EPS))
    assert value == psi_counts({"a": 1, "b": 0}, {"a": 0, "b": 1})


def test_psi_counts_category_empty_on_both_sides_adds_nothing():
    assert psi_counts({"a": 1, "b": 1, "z": 0}, {"a": 1, "b": 3}) == pytest.approx(
        psi_counts({"a": 1, "b": 1}, {"a": 1, "b": 3}))


def test_psi_counts_custom_epsilon():
    assert psi_counts({"a": 1}, {"b": 1}, epsilon=0.01) == pytest.approx(term(0.01, 1.0) + term(1.0, 0.01))


def test_psi_counts_accepts_weights():
    assert psi_counts({"a": 0.5, "b": 0.5}, {"a": 0.25, "b": 0.75}) == pytest.approx(
        psi_counts({"a": 50, "b": 50}, {"a": 25, "b": 75}))


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
    # edges 0, 4.5, 9: expected counts 0, 5, 5, 0; actual 0, 5, 4, 1 (100 is beyond the range)
    value = psi_values(list(range(10)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 100], bins=2)
    assert value == pytest.approx(term(0.4, 0.5) + term(0.1, EPS))


def test_psi_values_constant_reference_detects_shift():
    assert psi_values([1.0] * 10, [1.0] * 5) == pytest.approx(0.0, abs=1e-15)
    # all mass moves from the "== 1" bin to the "above" bin
    assert psi_values([1.0] * 10, [2.0] * 10) == pytest.approx(2 * (1 - EPS) * math.log(1 / EPS))
    assert psi_values([1.0] * 10, [0.0] * 10) == pytest.approx(2 * (1 - EPS) * math.log(1 / EPS))


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
