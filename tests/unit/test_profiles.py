"""Profiles: counts over a baseline's bins that add up, and the monitors' PSI on them."""
from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from gitmodel import drift, profiles, profiling, prodlog, signals
from gitmodel.errors import InvalidProfile

SIGNALS = signals.signals_for(["region"])


def record(i: int, rng: random.Random, words: int = 6, label: str | None = None, day: int = 1) -> dict:
    text = " ".join(rng.choice(["good", "bad", "service", "late", "pizza"]) for _ in range(rng.randint(1, words)))
    return prodlog.make_record(model="chat", version="v1", stage="prod", input=text,
                               output=label or rng.choice(["positive", "negative"]),
                               label=label or rng.choice(["positive", "negative"]),
                               confidence=round(rng.uniform(0.5, 1.0), 3), latency_ms=1.0, status=200,
                               ts=f"2026-11-{day:02d}T{i % 24:02d}:00:00.000Z", id=str(i),
                               category=rng.choice(["food", "price"]), region=rng.choice(["eu", "us"]))


def records(n: int, seed: int, **kw) -> list[dict]:
    rng = random.Random(seed)
    return [record(i, rng, **kw) for i in range(n)]


def test_the_bins_of_a_baseline_are_its_quantiles_and_categories():
    base = records(400, 1)
    binning = profiling.binning_from(base, SIGNALS)
    chars = binning.of("input.chars")
    expected = np.unique(np.quantile([len(r["input"]) for r in base], np.linspace(0, 1, 11)))
    assert list(chars.edges) == [float(x) for x in expected]
    assert chars.size == len(expected) - 1 + 2           # open bins below and above
    assert binning.of("input.category").categories == ("food", "price")
    assert binning.of("input.region").categories == ("eu", "us")
    assert binning.of("output.label").size == 3            # positive, negative and (unseen)


def test_unseen_categories_fall_in_their_own_bin_and_keep_their_names():
    binning = profiling.binning_from(records(200, 1), SIGNALS)
    window = records(50, 2) + [dict(records(1, 3)[0], label="neutral", category="drinks")]
    profile = profiling.Profiler(binning).add_all(window)
    label = profile.counts["output.label"]
    assert label.counts[-1] == 1 and label.unseen == {"neutral": 1}
    assert profile.counts["input.category"].unseen == {"drinks": 1}


def test_a_day_profile_summed_is_the_profile_of_the_concatenated_log():
    binning = profiling.binning_from(records(300, 1), SIGNALS)
    days = [records(150, 10 + d, day=d + 1) for d in range(7)]
    by_day = [profiling.Profiler(binning, "chat").add_all(day) for day in days]
    # through JSON, as profiles saved on different machines would be
    merged = profiles.merge([profiles.from_dict(json.loads(profiles.dumps(p))) for p in by_day])
    whole = profiling.Profiler(binning, "chat").add_all([r for day in days for r in day])
    a, b = merged.to_dict(), whole.to_dict()
    for name in a["signals"]:
        assert a["signals"][name].pop("sum") == pytest.approx(b["signals"][name].pop("sum")) \
            if "sum" in a["signals"][name] else True
    assert a == b
    assert (merged.n, merged.first, merged.last) == (1050, "2026-11-01T00:00:00.000Z", "2026-11-07T23:00:00.000Z")


def test_counting_in_chunks_gives_the_counts_of_one_pass(monkeypatch):
    binning = profiling.binning_from(records(300, 1), SIGNALS)
    window = records(1000, 5)
    whole = profiling.Profiler(binning).add_all(window).to_dict()
    monkeypatch.setattr(profiling, "FLUSH_EVERY", 7)
    monkeypatch.setattr(profiling, "FLUSH_VALUES", 5)
    assert profiling.Profiler(binning).add_all(window).to_dict()["signals"]["input.chars"]["counts"] == \
        whole["signals"]["input.chars"]["counts"]


def test_a_profile_of_another_baseline_is_refused_naming_the_signal():
    ours = profiling.Profiler(profiling.binning_from(records(300, 1), SIGNALS), "chat").add_all(records(50, 2))
    theirs = profiling.Profiler(profiling.binning_from(records(300, 9, words=20), SIGNALS), "chat",
                               "chat@v0.9.0").add_all(records(50, 2))
    with pytest.raises(InvalidProfile) as raised:
        profiles.merge([ours, theirs], ["monday.json", "tuesday.json"])
    message = str(raised.value)
    assert message.startswith("tuesday.json: counts over other bins than monday.json")
    assert "input.chars: bin edges" in message and "chat@v0.9.0" in message


def test_a_profile_of_another_model_is_refused():
    binning = profiling.binning_from(records(100, 1), SIGNALS)
    with pytest.raises(InvalidProfile, match="a profile of model 'other', not 'chat'"):
        profiles.merge([profiles.Profile.empty(binning, "chat"), profiles.Profile.empty(binning, "other")])


@pytest.mark.parametrize("edit, problem", [
    (lambda d: d.update(kind="other"), "not a git-model profile"),
    (lambda d: d["signals"]["output.label"].update(counts=[1, 2]), "signals.output.label.counts must be a list of 3"),
    (lambda d: d["signals"]["output.label"].update(counts=[1, -2, 0]), "must hold whole numbers >= 0"),
    (lambda d: d["signals"]["output.label"].update(n=999), "signals.output.label.n must be the sum of its counts"),
    (lambda d: d["signals"]["input.chars"].update(edges=[3, 2]), "signals.input.chars.edges must increase"),
    (lambda d: d.update({"from": "yesterday"}), "from 'yesterday' is not an ISO 8601 time"),
    (lambda d: d["signals"]["input.chars"].update(edges=d["signals"]["input.chars"]["edges"][:-1] + [999]),
     "does not match its bins"),
])
def test_a_damaged_profile_file_is_refused_naming_the_field(edit, problem):
    binning = profiling.binning_from(records(300, 1), SIGNALS)
    doc = profiling.Profiler(binning).add_all(records(100, 2)).to_dict()
    edit(doc)
    with pytest.raises(InvalidProfile) as raised:
        profiles.from_dict(doc, "week.json")
    assert str(raised.value).startswith("week.json: ") and problem in str(raised.value)


def test_psi_of_aligned_counts_matches_the_hand_computation():
    e, a = [50, 30, 20, 0], [30, 30, 30, 10]
    shares = lambda c: [(x + 0.5) / (sum(c) + 0.5 * len(c)) for x in c]  # noqa: E731
    by_hand = sum((y - x) * math.log(y / x) for x, y in zip(shares(e), shares(a)))
    assert drift.psi_aligned(e, a) == pytest.approx(by_hand)
    assert drift.psi_aligned(e, e) == 0


def test_psi_grows_as_a_distribution_shifts():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 5000)
    edges = drift.bin_edges(base)
    expected = drift.bin_counts(base, edges)
    values = [drift.psi_aligned(expected, drift.bin_counts(rng.normal(shift, 1, 5000), edges))
              for shift in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert values == sorted(values) and values[0] < 0.01 and values[-1] > 1


@pytest.mark.parametrize("psi, band", [(0.0, "stable"), (0.0999, "stable"), (0.1, "watch"), (0.19, "watch"),
                                       (0.2, "alert"), (5.0, "alert")])
def test_drift_bands(psi, band):
    assert drift.drift_band(psi) == band


def test_bands_are_settable_and_nan_is_never_a_band():
    assert drift.drift_band(0.15, watch=0.2, alert=0.3) == "stable"
    with pytest.raises(ValueError, match="NaN"):
        drift.drift_band(float("nan"))


def test_an_empty_side_is_no_data_never_stable():
    measured = drift.measure_aligned([10, 20, 0], [0, 0, 0])
    assert (measured.value, measured.band) == (None, drift.NO_DATA)


def test_few_samples_are_flagged_but_measured():
    measured = drift.measure_aligned([40, 40], [10, 30], min_samples=100)
    assert measured.few_samples and measured.value is not None and measured.band in drift.DRIFT_BANDS
    assert not drift.measure_aligned([400, 400], [100, 300], min_samples=100).few_samples
