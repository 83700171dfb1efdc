"""params.yaml drift:, retrain:, tiers:, models: and review:: defaults, overrides, and each bad value named."""
from __future__ import annotations

import pytest

from gitmodel import params
from gitmodel.errors import InvalidParams


def write(tmp_path, text: str):
    (tmp_path / "params.yaml").write_text(text)
    return tmp_path


def test_the_template_holds_every_default(tmp_path):
    root = write(tmp_path, params.PARAMS_TEMPLATE)
    drift = params.drift_params(root)
    assert {k: drift[k] for k in params.DRIFT_DEFAULTS} == params.DRIFT_DEFAULTS
    assert params.retrain_params(root) == params.RETRAIN_DEFAULTS
    assert params.tier(root, "chat") == {"risk": "standard", "accuracy_drop": 0.05, "schedule": "monthly"}
    assert params.review_rubric(root)["criteria"] == ["correct", "helpful", "safe"]


def test_bands_per_signal_override_the_section(tmp_path):
    root = write(tmp_path, 'drift:\n  watch: 0.05\n  signals:\n    "output.confidence": {alert: 0.3}\n')
    drift = params.drift_params(root)
    assert params.bands_for(drift, "input.chars") == (0.05, 0.2)
    assert params.bands_for(drift, "output.confidence") == (0.05, 0.3)


@pytest.mark.parametrize("text, problem", [
    ("drift:\n  bins: 0\n", "drift.bins must be at least 1, got 0"),
    ("drift:\n  watch: 0.3\n", "drift: watch and alert must be numbers with 0 <= watch <= alert, got watch 0.3, alert 0.2"),
    ("drift:\n  alert: high\n", "drift.alert must be float, got 'high'"),
    ("drift:\n  fields: category\n", "drift.fields must be a list of field names"),
    ("drift:\n  bands: {}\n", "drift.bands is not a drift setting"),
    ("drift:\n  signals:\n    input.chars: 0.3\n", "drift.signals.input.chars must be a mapping of watch and alert"),
    ("retrain:\n  events:\n    - {date: someday, what: launch}\n", "retrain.events[0] must be {date: YYYY-MM-DD"),
    ("retrain:\n  events:\n    - {date: 2026-11-02}\n", "retrain.events[0] must be {date: YYYY-MM-DD"),
    ("retrain:\n  input_psi: -1\n", "retrain.input_psi must be at least 0, got -1"),
    ("models:\n  chat: {risk: extreme}\n", "models.chat.risk must be one of high, standard, got 'extreme'"),
    ("tiers:\n  high: {schedule: daily}\n", "tiers.high: schedule must be weekly or monthly"),
])
def test_a_bad_setting_is_named(tmp_path, text, problem):
    root = write(tmp_path, text)
    with pytest.raises(InvalidParams) as raised:
        params.drift_params(root)
        params.retrain_params(root)
        params.tier(root, "chat")
    assert problem in str(raised.value)


def test_a_high_risk_model_gets_the_high_tier(tmp_path):
    root = write(tmp_path, "models:\n  chat: {risk: high}\ntiers:\n  high: {accuracy_drop: 0.02}\n")
    assert params.tier(root, "chat") == {"risk": "high", "accuracy_drop": 0.02, "schedule": "weekly"}
    assert params.tier(root, "other")["risk"] == "standard"


@pytest.mark.parametrize("text, problem", [
    ("eval: {}\n", "no review.rubric"),
    ("review:\n  rubric: {criteria: [], scale: [1, 5]}\n", "review.rubric.criteria must be a list of distinct names"),
    ("review:\n  rubric: {criteria: [a], scale: [5, 1]}\n", "review.rubric.scale must be [lowest, highest]"),
])
def test_a_missing_or_bad_rubric_is_named(tmp_path, text, problem):
    with pytest.raises(InvalidParams, match=problem.replace("[", r"\[").replace("]", r"\]")):
        params.review_rubric(write(tmp_path, text))
