"""Slice and bias metrics: per-value accuracy and label rates, the largest gaps, small slices left out."""
from __future__ import annotations

import pytest

from gitmodel import evalprep, resultfiles
from gitmodel.metrics import compute
from gitmodel.metricspecs import LOWER, spec
from gitmodel.runners.base import Example, Prediction

LABELS = ("fraud", "ok")


def clf(i, expected, predicted, **fields):
    example = Example(id=f"e{i}", input="tx", expected=expected, labels=LABELS,
                      fields={"id": f"e{i}", "input": "tx", **fields})
    return example, Prediction(output=predicted, label=predicted, confidence=0.9)


def run(pairs, **kwargs):
    return compute([e for e, _ in pairs], [p for _, p in pairs], **kwargs)


def population():
    """EU: 4 fraud flagged right, 16 ok of which 4 wrongly flagged (fpr 0.25), accuracy 0.8.
    US: 4 fraud of which 2 missed, 16 ok none flagged (fpr 0), accuracy 0.9. APAC: 3 examples."""
    pairs = []
    i = 0
    for region, fraud_hit, fraud_miss, ok_flagged, ok_right in (("eu", 4, 0, 4, 12), ("us", 2, 2, 0, 16),
                                                                 ("apac", 1, 0, 0, 2)):
        for expected, predicted, n in (("fraud", "fraud", fraud_hit), ("fraud", "ok", fraud_miss),
                                       ("ok", "fraud", ok_flagged), ("ok", "ok", ok_right)):
            for _ in range(n):
                i += 1
                pairs.append(clf(i, expected, predicted, region=region, tier=("gold" if i % 2 else "free")))
    return pairs


def test_slices_report_accuracy_and_label_rates_per_value():
    metrics = run(population(), slices=("region",), min_slice=20)
    eu, us = metrics["slices"]["region"]["eu"], metrics["slices"]["region"]["us"]
    assert eu == {"n": 20, "accuracy": 0.8, "labels": {"fraud": {"recall": 1.0, "fpr": 0.25},
                                                        "ok": {"recall": 0.75, "fpr": 0.0}}}
    assert us["accuracy"] == 0.9 and us["labels"]["fraud"] == {"recall": 0.5, "fpr": 0.0}


def test_small_slices_report_their_n_only_and_stay_out_of_the_gaps():
    metrics = run(population(), slices=("region",), min_slice=20)
    assert metrics["slices"]["region"]["apac"] == {"n": 3}
    # gaps over eu and us only: accuracy 0.9 - 0.8, fraud fpr 0.25 - 0, ok fpr (missed fraud) 0.5 - 0
    assert metrics["bias"]["region"] == {"accuracy_gap": 0.1, "fraud": {"fpr_gap": 0.25}, "ok": {"fpr_gap": 0.5}}


def test_one_example_cannot_move_a_gap():
    pairs = population()
    flipped = run(pairs[:-1] + [clf(999, "ok", "fraud", region="apac")], slices=("region",), min_slice=20)
    assert flipped["bias"] == run(pairs, slices=("region",), min_slice=20)["bias"]


def test_no_gap_with_fewer_than_two_big_slices():
    metrics = run(population(), slices=("region",), min_slice=21)
    assert "bias" not in metrics
    assert all(set(v) == {"n"} for v in metrics["slices"]["region"].values())


def test_missing_field_is_its_own_slice_and_said():
    pairs = population() + [(Example(id="x1", input="tx", expected="ok", labels=LABELS, fields={"id": "x1"}),
                              Prediction(output="ok", label="ok", confidence=0.9))]
    metrics = run(pairs, slices=("region",), min_slice=1)
    assert metrics["slices"]["region"]["(missing)"]["n"] == 1
    warnings = evalprep.slice_warnings([e for e, _ in pairs], ["region", "tier"])
    assert warnings == ["slice field 'region' is missing on 1 of 44 examples ('x1'): they are counted as (missing)",
                        "slice field 'tier' is missing on 1 of 44 examples ('x1'): they are counted as (missing)"]


def test_non_text_values_slice_by_their_json():
    pairs = [clf(i, "ok", "ok", vip=bool(i % 2)) for i in range(4)]
    assert set(run(pairs, slices=("vip",), min_slice=1)["slices"]["vip"]) == {"false", "true"}


def test_generations_slice_by_accuracy():
    pairs = [(Example(id=f"g{i}", input="q", expected="A", fields={"lang": "en" if i < 2 else "fr"}),
              Prediction(output="A" if i != 3 else "B")) for i in range(4)]
    metrics = run(pairs, slices=("lang",), min_slice=2)
    assert metrics["slices"]["lang"]["fr"] == {"n": 2, "accuracy": 0.5}
    assert metrics["bias"]["lang"] == {"accuracy_gap": 0.5}


@pytest.mark.parametrize("key", ["bias.region.accuracy_gap", "bias.region.fraud.fpr_gap",
                                 "slices.region.eu.labels.fraud.fpr"])
def test_gaps_and_slice_fpr_are_lower_is_better(key):
    assert spec(key).direction is LOWER


def test_sliced_metrics_validate_against_the_schema():
    doc = {"schema_version": 1, "model": {"name": "m", "path": None, "md5": None},
           "evalset": {"name": "e", "path": "evalsets/e.jsonl", "md5": "0" * 32}, "params": {},
           "runner": {"name": "python", "version": "1"},
           "metrics": run(population(), slices=("region", "tier"), min_slice=5)}
    resultfiles.validate_metrics(doc, "metrics/m/e.json")
