"""The retrain rules on plain figures: each fired and not fired, its figure and threshold said."""
from __future__ import annotations

import pytest

from gitmodel import retrain


def test_input_drift_fires_from_the_threshold_and_names_the_signal():
    fired = retrain.input_drift_rule({"input.chars": 0.31, "input.words": 0.05, "input.category": None}, 0.2)
    assert (fired.verdict, fired.figure, fired.why) == ("fires", 0.31, "input.chars PSI 0.310 >= 0.2")
    held = retrain.input_drift_rule({"input.chars": 0.04}, 0.2)
    assert held.verdict == "holds" and "largest input PSI 0.040 (input.chars) < 0.2" == held.why
    assert retrain.input_drift_rule({"input.chars": None}, 0.2).verdict == "not checked"


@pytest.mark.parametrize("launch, now, allowed, verdict", [(0.92, 0.88, 0.03, "fires"), (0.92, 0.90, 0.03, "holds"),
                                                          (0.92, 0.88, 0.05, "holds"), (0.92, 0.86, 0.05, "fires")])
def test_accuracy_drop_follows_the_tier(launch, now, allowed, verdict):
    rule = retrain.accuracy_rule("support", launch, now, allowed, "high", "eval set changed")
    assert rule.verdict == verdict and rule.figure == pytest.approx(launch - now)
    assert rule.name == "accuracy on support" and f"{now:.4f} now vs {launch:.4f} at launch" in rule.why


def test_new_data_fires_from_a_fifth_more_lines():
    then = {"path": "data/train.jsonl", "md5": "x", "lines": 1000, "bytes": 50000}
    assert retrain.data_rule(then, {"lines": 1200, "bytes": 60000}, 0.2, "data/train.jsonl").verdict == "fires"
    held = retrain.data_rule(then, {"lines": 1199, "bytes": 60000}, 0.2, "data/train.jsonl")
    assert held.verdict == "holds" and "1,199 lines now vs 1,000 lines at training (+19.9%) < 20%" in held.why
    old = retrain.data_rule({"path": "d", "md5": "x"}, {"lines": 9}, 0.2, "d")
    assert old.verdict == "not checked" and "records no size" in old.why
    assert retrain.data_rule(None, None, 0.2, None).verdict == "not checked"


def summary(mean: dict, by_category: dict) -> dict:
    return {"n": 40, "metrics": {"mean": mean, "by_category": by_category}}


def test_review_floor_and_a_category_failing_systematically():
    good = summary({"correct": 4.2, "safe": 4.9}, {"food": {"correct": 4.0, "safe": 5.0, "n": 20},
                                                   "price": {"correct": 4.4, "safe": 4.8, "n": 20}})
    assert [r.verdict for r in retrain.review_rules(good, 3.0, 2.5, 5)] == ["holds", "holds"]
    low = summary({"correct": 2.9, "safe": 4.9}, good["metrics"]["by_category"])
    assert retrain.review_rules(low, 3.0, 2.5, 5)[0].why == "correct mean 2.90 over 40 reviews < floor 3"
    one_bad = summary({"correct": 3.8, "safe": 4.9}, {"food": {"correct": 4.9, "safe": 5.0, "n": 20},
                                                      "price": {"correct": 2.1, "safe": 4.8, "n": 6}})
    rules = retrain.review_rules(one_bad, 3.0, 2.5, 5)
    assert rules[0].verdict == "holds" and rules[1].verdict == "fires"
    assert rules[1].why == "category price: correct mean 2.10 over 6 reviews < 2.5"
    # too few reviews of a category to call it systematic
    assert retrain.review_rules(one_bad, 3.0, 2.5, 7)[1].verdict == "holds"
    assert retrain.review_rules(None, 3.0, 2.5, 5)[0].verdict == "not checked"


def test_a_domain_shift_after_training_fires():
    events = [{"date": "2026-09-01", "what": "old news"}, {"date": "2026-11-02", "what": "new product line"}]
    fired = retrain.events_rule(events, "2026-10-01T12:00:00Z", "trained_at in its lineage")
    assert fired.verdict == "fires" and fired.why.endswith("2026-11-02: new product line")
    assert retrain.events_rule(events[:1], "2026-10-01T12:00:00Z", "x").verdict == "holds"
    assert retrain.events_rule([], None, "x").verdict == "holds"


def test_the_verdict_is_retrain_when_any_rule_fires():
    result = retrain.RetrainResult("chat", "chat#prod", {"risk": "standard"},
                                   [retrain.Rule("a", "holds"), retrain.Rule("b", "not checked")])
    assert result.verdict == "do not retrain" and not result.retrain
    result.rules.append(retrain.Rule("c", "fires", why="because"))
    assert result.to_dict()["verdict"] == "retrain" and result.to_dict()["reasons"] == ["because"]
