"""canary-check's verdict from constructed logs: each verdict reached, and the settings checked."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from gitmodel import canary, prodlog
from gitmodel.errors import InvalidParams

START = datetime(2026, 11, 1, tzinfo=timezone.utc)


def records(stage: str, version: str, n: int, *, hours: float = 30.0, positive: float = 0.5, errors: float = 0.0,
            seed: int = 0, sure: float | None = None) -> list[dict]:
    rng = random.Random(f"{stage}-{seed}")
    out = []
    for i in range(n):
        label = "positive" if rng.random() < positive else "negative"
        failed = rng.random() < errors
        out.append(prodlog.make_record(
            model="m", version=version, stage=stage, input="the food was good", output="" if failed else f" {label}",
            label=None if failed else label, latency_ms=10 + rng.random() * 5, status=500 if failed else 200,
            confidence=None if failed or sure is None else min(1.0, sure + rng.random() * 0.1),
            ts=prodlog.timestamp(START + timedelta(hours=hours * i / max(n - 1, 1)))))
    return out


def verdict(prod_records, canary_records, policy=canary.Policy()):
    prod = canary.summarise("prod", "v1", prod_records)
    new = canary.summarise("canary", "v2", canary_records)
    compared = [canary.compare_signal(name, prod_records, canary_records) for name in canary.SIGNALS]
    return canary.assess(prod, new, compared, policy), compared


def test_promote_when_watched_long_enough_with_enough_requests_and_stable_signals():
    (result, reasons), compared = verdict(records("prod", "v1", 400), records("canary", "v2", 300, seed=1))
    assert result == canary.PROMOTE, reasons
    assert reasons == ["watched 30.0 h, 300 canary and 400 prod requests, every judged signal stable"]
    bands = {s.name: s.band for s in compared}
    assert bands["output.label"] == "stable" and bands["output.confidence"] == "not measured"


def test_a_surer_canary_is_shown_with_its_confidence_shift_and_still_promoted():
    """Confidence is shown, not judged: a better model is often a surer one, and the gate judged that."""
    (result, reasons), compared = verdict(records("prod", "v1", 400, sure=0.6),
                                          records("canary", "v2", 300, seed=1, sure=0.85))
    shown = {s.name: s for s in compared}["output.confidence"]
    assert shown.band == "significant" and shown.judged is False
    assert result == canary.PROMOTE, reasons
    assert {s.name for s in compared if s.judged} == {"output.chars", "output.label", "output.refusal"}


def test_end_when_a_signal_reaches_the_alert_band():
    (result, reasons), _ = verdict(records("prod", "v1", 400), records("canary", "v2", 300, positive=0.95))
    assert result == canary.END
    assert len(reasons) == 1 and reasons[0].startswith("output.label: PSI ") and "(alert band)" in reasons[0]


def test_end_when_the_canary_errs_more_even_early():
    (result, reasons), _ = verdict(records("prod", "v1", 400), records("canary", "v2", 50, hours=1, errors=0.2))
    assert result == canary.END
    assert any(r.startswith("errors: canary ") for r in reasons)


def test_keep_watching_while_too_short_or_too_few():
    (result, reasons), _ = verdict(records("prod", "v1", 400, hours=2), records("canary", "v2", 300, hours=2))
    assert result == canary.KEEP_WATCHING
    assert reasons == ["watched 2.0 h of the 24 h required"]
    (result, reasons), _ = verdict(records("prod", "v1", 400), records("canary", "v2", 120))
    assert result == canary.KEEP_WATCHING
    assert "canary: 120 requests of the 200 required" in reasons


def test_keep_watching_on_a_moderate_shift():
    policy = canary.Policy(psi_watch=0.0001)
    (result, reasons), _ = verdict(records("prod", "v1", 400), records("canary", "v2", 300, seed=3), policy)
    assert result == canary.KEEP_WATCHING
    assert any("below the alert band" in r for r in reasons)


def test_split_keeps_the_two_arms_since_the_canary_was_assigned():
    before = records("canary", "v2", 3, hours=1)
    later = [dict(r, ts=prodlog.timestamp(START + timedelta(days=2))) for r in records("canary", "v2", 2)]
    other = records("canary", "v0", 2) + records("prod", "v1", 4, hours=1)
    prod, new, rest = canary.split(before + later + other, "v1", "v2", START + timedelta(days=1))
    assert (len(prod), len(new), rest) == (0, 2, 3 + 2 + 4)


@pytest.mark.parametrize("section, message", [
    ({"min_hour": 2}, "params.yaml: canary.min_hour is not a canary setting: did you mean 'min_hours' or 'min_requests'?"),
    ({"min_hours": "a day"}, "params.yaml: canary.min_hours must be a number >= 0, got 'a day'"),
    ({"psi_alert": -1}, "params.yaml: canary.psi_alert must be a number >= 0, got -1"),
    ([1, 2], "params.yaml: canary must be a mapping of min_hours, min_requests, psi_watch, psi_alert, error_margin"),
])
def test_bad_canary_settings_are_named(section, message):
    with pytest.raises(InvalidParams) as e:
        canary.policy_from(section)
    assert e.value.message == message


def test_canary_settings_override_the_defaults():
    policy = canary.policy_from({"min_hours": 1, "min_requests": 50})
    assert (policy.min_hours, policy.min_requests, policy.psi_alert) == (1.0, 50, 0.2)
