"""The comparison on plain dicts and bytes, no git, no disk (STYLE 3): the metric diff (metricdiff), the
behavioural diff (behaviour), the gate policy (gatepolicy) and the gate's rules (gaterules)."""
from __future__ import annotations

import json

import pytest

from gitmodel import gaterules, metricdiff
from gitmodel.behaviour import behaviour
from gitmodel.errors import InvalidMetrics, InvalidParams
from gitmodel.gatepolicy import GatePolicy, Tolerance
from gitmodel.metricdiff import comparable, diff_docs, metric_rows


def gate(baseline, candidate, tolerances=None, accepted=None, *, quality_tolerance=0.0, timing_tolerance=0.5,
         policy=None, output_psi=None):
    """:func:`gaterules.gate` under the policy these settings make, as params.yaml ``gate:`` would."""
    if policy is None:
        section = {"quality_tolerance": quality_tolerance, "timing_tolerance": timing_tolerance}
        if tolerances is not None:
            section["tolerance"] = tolerances
        if accepted is not None:
            section["accept"] = accepted
        policy = GatePolicy.parse(section)
    return gaterules.gate(baseline, candidate, policy=policy, output_psi=output_psi)


def doc(metrics: dict, evalset_md5: str = "e" * 32, model_md5: str = "m" * 32, **params) -> dict:
    return {
        "schema_version": 1,
        "model": {"name": "chat", "path": "models/chat.gguf", "md5": model_md5},
        "evalset": {"name": "support", "path": "evalsets/support.jsonl", "md5": evalset_md5},
        "params": {"runner": "llama", "temperature": 0, "seed": 0, "n_threads": 1, "refusal_patterns": [],
                   **params},
        "runner": {"name": "llama", "version": "0.3.8", "llama_cpp_version": None},
        "metrics": metrics,
    }


# ----------------------------------------------------------------------------- diff_docs == dvc's own code


def dvc_diff(old: dict | None, new: dict | None, all: bool = False) -> dict:
    """What `dvc metrics diff --json` computes for one file, through dvc's own functions."""
    from dvc.repo.metrics.show import _extract_metrics
    from dvc.utils.diff import diff, format_dict

    def data(d):
        return {"p": {"data": format_dict(_extract_metrics(d, "p") or {})}} if d is not None else {}

    return diff(data(old), data(new), with_unchanged=all).get("p", {})


OLD = doc({"n": 400, "accuracy": 0.75, "labels": {"pos": {"recall": 1.0, "support": 188}},
           "confidence": {"mean": 0.8}, "ties": 90})
NEW = doc({"n": 400, "accuracy": 0.925, "labels": {"pos": {"recall": 1, "support": 188}, "neg": {"recall": 0.5}},
           "latency_ms": {"p50": 0.2}, "ties": 0}, evalset_md5="f" * 32, model_md5="a" * 32, n_threads=4)


@pytest.mark.parametrize("old, new", [
    (OLD, NEW), (NEW, OLD), (OLD, OLD), (None, NEW), (OLD, None),
    ({"a": True, "b": [1, 2], "c": None, "d": {}, "e": "x"}, {"a": 1, "b": [1], "c": 0, "d": {"x": {}}, "e": "y"}),
    ({"a": {"b": {"c": 1}}}, {"a": 2}),
])
@pytest.mark.parametrize("all", [False, True])
def test_diff_docs_is_exactly_dvc_metrics_diff(old, new, all):
    assert diff_docs(old, new, all) == dvc_diff(old, new, all)


def test_diff_docs_shape():
    d = diff_docs(OLD, NEW)
    assert d["metrics.accuracy"] == {"old": 0.75, "new": 0.925, "diff": 0.925 - 0.75}   # not rounded
    assert d["metrics.labels.neg.recall"] == {"old": None, "new": 0.5}                   # no diff with a None
    assert d["metrics.confidence.mean"] == {"old": 0.8, "new": None}
    assert d["evalset.md5"] == {"old": "e" * 32, "new": "f" * 32}                        # strings: no diff
    assert d["params.n_threads"] == {"old": 1, "new": 4, "diff": 3}
    assert "metrics.n" not in d and "metrics.labels.pos.recall" not in d                 # 1.0 == 1: unchanged
    assert "params.refusal_patterns" not in diff_docs(OLD, NEW, all=True)                # lists are not metrics
    assert diff_docs(OLD, NEW, all=True)["metrics.n"] == {"old": 400, "new": 400, "diff": 0}
    assert list(d)[:3] == ["model.md5", "evalset.md5", "params.n_threads"]               # file order


# ----------------------------------------------------------------------------- comparable


def test_comparable_names_every_difference():
    assert comparable(OLD, OLD) == (True, "")
    same, reason = comparable(OLD, NEW)
    assert not same
    assert reason == (f"eval set evalsets/support.jsonl md5 differs (old {'e' * 32}, new {'f' * 32}); "
                      "eval params differ: n_threads 1 -> 4")
    same, reason = comparable(doc({}, max_tokens=32), doc({}, runner="openai"), names=("baseline", "candidate"))
    assert reason == 'eval params differ: runner "llama" -> "openai", max_tokens 32 -> 64'
    # the model may differ: that is what is being compared
    assert comparable(doc({}, model_md5="1" * 32), doc({}, model_md5="2" * 32)) == (True, "")


def test_a_param_an_older_file_does_not_record_stands_for_its_default():
    older = doc({})                                          # written before n_gpu_layers was recorded
    newer = doc({}, n_gpu_layers=0, max_tokens=64)           # the defaults, recorded
    assert comparable(older, newer) == (True, "")
    assert comparable(older, doc({}, n_gpu_layers=8)) == (False, "eval params differ: n_gpu_layers 0 -> 8")


# ----------------------------------------------------------------------------- metric rows


def test_metric_rows_verdict_by_direction():
    old = {"n": 10, "accuracy": 0.5, "label_psi": 0.1, "output_tokens": {"mean": 30.0}, "refusal_rate": 0.2,
           "latency_ms": {"p50": 10.0}, "custom": 1, "ties": 3}
    new = {"n": 12, "accuracy": 0.6, "label_psi": 0.2, "output_tokens": {"mean": 20.0}, "refusal_rate": 0.1,
           "latency_ms": {"p50": 10.0}, "custom": 2, "confidence": {"mean": 0.9}}
    rows = {r.key: r for r in metric_rows(old, new)}
    assert rows["accuracy"].verdict == "better" and rows["accuracy"].change == pytest.approx(0.1)
    assert rows["label_psi"].verdict == "worse"             # lower is better
    assert rows["refusal_rate"].verdict == "better"
    assert rows["output_tokens.mean"].verdict == "worse"    # stable: any move is a regression
    assert rows["n"].verdict == "changed"                   # info
    assert rows["custom"].verdict == "changed" and rows["custom"].direction is None   # undeclared
    assert rows["latency_ms.p50"].verdict == "same" and rows["latency_ms.p50"].kind == "timing"
    assert (rows["ties"].new, rows["ties"].verdict, rows["ties"].change) == (None, "changed", None)
    assert (rows["confidence.mean"].old, rows["confidence.mean"].verdict) == (None, "changed")
    assert [r.key for r in metric_rows(old, new, all=False)] == [
        "n", "accuracy", "label_psi", "output_tokens.mean", "refusal_rate", "custom", "confidence.mean", "ties"]
    # documents work as well as their metrics sections
    assert [r.key for r in metric_rows(doc(old), doc(new))] == [r.key for r in metric_rows(old, new)]


def test_merged_keys_keeps_new_keys_next_to_their_neighbours():
    assert metricdiff.merged_keys(["a", "b", "d"], ["a", "b", "c", "d", "e"]) == ["a", "b", "c", "d", "e"]
    assert metricdiff.merged_keys(["x"], ["n", "x"]) == ["x", "n"]


# ----------------------------------------------------------------------------- behaviour


def outputs(*records: dict) -> bytes:
    lines = []
    for r in records:
        full = {"id": r["id"], "output": r.get("output", r.get("label")), "label": r.get("label"),
                "confidence": r.get("confidence"), "correct": r.get("correct"), "tie": r.get("tie", False),
                "output_tokens": r.get("output_tokens", 1), "scores": None}
        lines.append(json.dumps(full, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def test_behaviour_lists_flips_changes_and_one_sided_examples():
    old = outputs(
        {"id": "a", "label": "pos", "confidence": 0.9, "correct": True},
        {"id": "b", "label": "pos", "confidence": 0.6, "correct": False},
        {"id": "c", "label": "neg", "confidence": 0.7, "correct": None},
        {"id": "g", "output": "hello there", "output_tokens": 2, "correct": None},
        {"id": "gone", "label": "pos", "confidence": 0.5, "correct": True},
    )
    new = outputs(
        {"id": "a", "label": "neg", "confidence": 0.8, "correct": False},
        {"id": "b", "label": "neg", "confidence": 0.9, "correct": True},
        {"id": "c", "label": "pos", "confidence": 0.7, "correct": None},
        {"id": "g", "output": "hello", "output_tokens": 1, "correct": None},
        {"id": "new", "label": "pos", "confidence": 0.5, "correct": True},
    )
    b = behaviour(old, new)
    assert b["matched"] == 4
    assert b["correct_to_wrong"] == ["a"] and b["wrong_to_correct"] == ["b"]
    assert b["label_changed"] == ["a", "b", "c"]
    assert b["generation_changed"] == ["g"]
    assert b["only_old"] == ["gone"] and b["only_new"] == ["new"]
    assert b["counts"] == {"correct_to_wrong": 1, "wrong_to_correct": 1, "label_changed": 3,
                           "generation_changed": 1, "only_old": 1, "only_new": 1}
    assert b["examples"]["a"] == {
        "old": {"output": "pos", "label": "pos", "confidence": 0.9, "correct": True, "tie": False},
        "new": {"output": "neg", "label": "neg", "confidence": 0.8, "correct": False, "tie": False}}
    # each example once, with everything that changed for it
    assert b["changes"] == {"a": ["correct -> wrong", "label pos -> neg"], "b": ["wrong -> correct", "label pos -> neg"],
                            "c": ["label neg -> pos"], "g": ["generation changed"]}
    assert b["examples"]["gone"]["new"] is None and b["examples"]["new"]["old"] is None
    for key in ("output_tokens", "confidence", "label"):
        entry = b["psi"][key]
        assert (entry["psi"], entry["band"]) == (None, "insufficient data")   # 4 examples


def test_behaviour_psi_bands_and_missing_distributions():
    same = outputs(*({"id": f"x{i}", "label": "pos" if i % 2 else "neg", "confidence": 0.5 + i / 100,
                      "correct": True} for i in range(60)))
    b = behaviour(same, same)
    assert b["psi"]["label"] == {"psi": 0.0, "band": "stable", "bins": 2, "n_expected": 60, "n_actual": 60,
                                 "smoothing": "additive smoothing: +0.5 per bin"}
    assert (b["psi"]["confidence"]["psi"], b["psi"]["confidence"]["band"]) == (0.0, "stable")
    assert not any(b[k] for k in ("correct_to_wrong", "wrong_to_correct", "label_changed", "only_old"))
    shifted = outputs(*({"id": f"x{i}", "label": "pos", "confidence": 0.99, "correct": True} for i in range(60)))
    b = behaviour(same, shifted)
    assert b["psi"]["label"]["band"] == "significant"
    assert b["psi"]["confidence"]["band"] == "significant"
    generations = outputs({"id": "g", "output": "text", "output_tokens": 3})
    b = behaviour(generations, generations)
    assert b["psi"]["confidence"] is None and b["psi"]["label"] is None
    # one generation: too few for a PSI, said as such rather than given a band
    assert (b["psi"]["output_tokens"]["psi"], b["psi"]["output_tokens"]["band"]) == (None, "insufficient data")
    assert behaviour(None, generations)["only_new"] == ["g"]


def test_behaviour_names_a_bad_line():
    with pytest.raises(InvalidMetrics, match=r"^new outputs:2: not valid JSON"):
        behaviour(outputs({"id": "a", "label": "x"}), outputs({"id": "a", "label": "x"}) + b"{oops\n")


# ----------------------------------------------------------------------------- gate

BASE = {"n": 400, "accuracy": 0.925, "labels": {"positive": {"fpr": 0.141509, "precision": 0.862385}},
        "label_psi": 0.022547, "output_tokens": {"mean": 30.0}, "latency_ms": {"p50": 100.0, "p95": 200.0},
        "tokens_per_second": 50.0}


def rows(report) -> dict:
    return {r.metric: r for r in report.rows}


def test_gate_passes_equal_and_better_and_lists_every_metric():
    better = {**BASE, "accuracy": 0.93, "label_psi": 0.01}
    report = gate(BASE, better)
    assert report.passed and report.failures == []
    assert [r.metric for r in report.rows] == [
        "n", "accuracy", "labels.positive.fpr", "labels.positive.precision", "label_psi", "output_tokens.mean",
        "latency_ms.p50", "latency_ms.p95", "tokens_per_second"]
    r = rows(report)
    assert (r["n"].verdict, r["n"].rule) == ("info", "info: not gated")
    assert (r["accuracy"].verdict, r["accuracy"].rule) == ("pass", ">= baseline - 0")
    assert r["label_psi"].rule == "<= baseline + 0"
    assert r["output_tokens.mean"].rule == "within ±10 %"     # the length metrics' declared default
    assert r["latency_ms.p50"].rule == "<= baseline * 1.5"     # timing: relative 50 % by default
    assert r["tokens_per_second"].rule == ">= baseline * 0.5"


def test_gate_quality_regressions_fail_by_direction():
    worse = {**BASE, "accuracy": 0.84, "label_psi": 0.104378, "labels": {"positive": {"fpr": 0.3, "precision": 0.9}},
             "output_tokens": {"mean": 33.5}}
    report = gate(BASE, worse)
    assert not report.passed
    assert [r.metric for r in report.failures] == ["accuracy", "labels.positive.fpr", "label_psi",
                                                  "output_tokens.mean"]
    r = rows(report)
    assert r["accuracy"].regression == pytest.approx(0.085) and r["accuracy"].change == pytest.approx(-0.085)
    assert r["labels.positive.precision"].verdict == "pass"
    assert report.summary().startswith("fail: 4 regressions: accuracy, labels.positive.fpr, label_psi")


def test_gate_timings_get_a_relative_tolerance():
    r = rows(gate(BASE, {**BASE, "latency_ms": {"p50": 149.0, "p95": 301.0}, "tokens_per_second": 26.0}))
    assert r["latency_ms.p50"].verdict == "pass"
    assert r["latency_ms.p95"].verdict == "fail"
    assert r["tokens_per_second"].verdict == "pass"
    r = rows(gate(BASE, {**BASE, "tokens_per_second": 24.0}, timing_tolerance=0.6))
    assert (r["tokens_per_second"].verdict, r["tokens_per_second"].rule) == ("pass", ">= baseline * 0.4")


def test_gate_tolerances_by_key_pattern_and_nesting():
    worse = {**BASE, "accuracy": 0.915, "labels": {"positive": {"fpr": 0.15, "precision": 0.85}},
             "latency_ms": {"p50": 100.0, "p95": 259.0}}
    tolerances = {"accuracy": 0.01, "labels.*": 0.001, "labels.*.fpr": 0.01, "latency_ms": {"p95": 0.3}}
    r = rows(gate(BASE, worse, tolerances))
    assert (r["accuracy"].verdict, r["accuracy"].rule) == ("pass", ">= baseline - 0.01")
    assert r["labels.positive.fpr"].verdict == "pass"            # the longer pattern wins
    assert r["labels.positive.precision"].verdict == "fail"      # labels.* (0.001)
    assert (r["latency_ms.p95"].verdict, r["latency_ms.p95"].rule) == ("pass", "<= baseline * 1.3")
    # explicit absolute + relative, and the declared pattern as a key
    tol = {"latency_ms.*": {"relative": 0.5, "absolute": 25}, "labels.<label>.precision": 0.02}
    r = rows(gate(BASE, {**worse, "latency_ms": {"p50": 170.0, "p95": 200.0}}, tol))
    assert (r["latency_ms.p50"].verdict, r["latency_ms.p50"].rule) == ("pass", "<= baseline * 1.5 + 25")
    assert r["labels.positive.precision"].verdict == "pass"
    stable = rows(gate(BASE, {**BASE, "output_tokens": {"mean": 33.0}}, {"output_tokens.*": Tolerance(1, 0.1)}))
    assert (stable["output_tokens.mean"].verdict, stable["output_tokens.mean"].rule) == ("pass", "within ±(10 % + 1)")


def test_gate_missing_metric_fails_new_metric_is_info():
    candidate = {k: v for k, v in BASE.items() if k != "label_psi"}
    candidate["refusal_rate"] = 0.5
    candidate["n"] = 399
    r = rows(gate(BASE, candidate))
    assert r["label_psi"].verdict == "fail" and r["label_psi"].rule == "<= baseline + 0; missing in the candidate"
    assert (r["refusal_rate"].verdict, r["refusal_rate"].rule) == ("info", "new in the candidate: no baseline")
    assert r["n"].verdict == "info"
    r = rows(gate({**BASE, "mine": 1}, {**BASE, "mine": 0}))
    assert (r["mine"].verdict, r["mine"].rule) == ("info", "not gated: no metric declares this key")


def test_gate_accepted_tradeoff_lets_a_chosen_regression_through():
    worse = {**BASE, "accuracy": 0.84, "labels": {"positive": {"fpr": 0.3, "precision": 0.862385}}}
    accept = [{"metric": "accuracy", "max_regression": 0.085, "rationale": "smaller model, 3x cheaper"},
              {"metric": "labels.*.fpr", "max_regression": 0.1, "rationale": "recall matters more"},
              {"metric": "label_psi", "max_regression": 0.5, "rationale": "not needed"}]
    report = gate(BASE, worse, accepted=accept)
    r = rows(report)
    assert r["accuracy"].verdict == "accepted"                   # exactly at the limit (float noise absorbed)
    assert r["accuracy"].tradeoff.rationale == "smaller model, 3x cheaper"
    assert r["labels.positive.fpr"].verdict == "fail"            # 0.158 > 0.1
    t = {t.metric: t for t in report.tradeoffs}
    assert t["accuracy"].applied_to == ["accuracy"] and t["labels.*.fpr"].exceeded == ["labels.positive.fpr"]
    assert t["label_psi"].applied_to == [] and t["label_psi"].exceeded == []
    assert not report.passed
    report = gate(BASE, worse, accepted=[*accept[:1], {**accept[1], "max_regression": 0.2}])
    assert report.passed and [x.metric for x in report.accepted] == ["accuracy", "labels.positive.fpr"]
    fpr = next(t for t in report.tradeoffs if t.metric == "labels.*.fpr")
    assert (fpr.max_regression, fpr.applied_to, fpr.rationale) == (0.2, ["labels.positive.fpr"], "recall matters more")


@pytest.mark.parametrize("entry, message", [
    ({"metric": "accuracy", "max_regression": 0.01},
     "params.yaml: gate.accept[0] (accuracy): rationale is required and must not be empty"),
    ({"metric": "accuracy", "max_regression": 0.01, "rationale": "  "},
     "params.yaml: gate.accept[0] (accuracy): rationale is required and must not be empty"),
    ({"max_regression": 0.01, "rationale": "x"},
     "params.yaml: gate.accept[0]: metric is required (a metric key or pattern, e.g. accuracy)"),
    ({"metric": "accuracy", "max_regression": -1, "rationale": "x"},
     "params.yaml: gate.accept[0] (accuracy): max_regression must be a number >= 0 (how much worse than the "
     "baseline, in the metric's units), got -1"),
    ({"metric": "accuracy", "max_regression": 0.1, "reason": "x"},
     "params.yaml: gate.accept[0] (accuracy): unknown key 'reason' (an entry has metric, max_regression, "
     "rationale; did you mean 'rationale'?)"),
    ({"metric": "accuracy", "max_regresion": 0.1, "rationale": "x"},
     "params.yaml: gate.accept[0] (accuracy): unknown key 'max_regresion' (an entry has metric, max_regression, "
     "rationale; did you mean 'max_regression'?)"),
    ("accuracy", "params.yaml: gate.accept[0] must be a mapping with metric, max_regression and rationale, "
                 "got 'accuracy'"),
])
def test_gate_refuses_a_bad_tradeoff(entry, message):
    with pytest.raises(InvalidParams) as e:
        gate(BASE, BASE, accepted=[entry])
    assert str(e.value) == message


@pytest.mark.parametrize("tolerances, message", [
    ({"accuracy": "a lot"}, "params.yaml: gate.tolerance.accuracy must be a number >= 0 or {absolute: a, "
                            "relative: r}, got 'a lot'"),
    ({"accuracy": -0.1}, "params.yaml: gate.tolerance.accuracy must be a number >= 0 or {absolute: a, "
                         "relative: r}, got -0.1"),
    ({"latency_ms.*": {"relative": "x"}}, "params.yaml: gate.tolerance.latency_ms.*.relative must be a number >= 0, "
                                          "got 'x'"),
])
def test_gate_refuses_a_bad_tolerance(tolerances, message):
    with pytest.raises(InvalidParams) as e:
        gate(BASE, BASE, tolerances)
    assert str(e.value) == message


def test_gate_report_to_dict_is_json():
    report = gate(BASE, {**BASE, "accuracy": 0.9}, accepted=[{"metric": "accuracy", "max_regression": 0.05,
                                                              "rationale": "ok"}])
    data = json.loads(json.dumps(report.to_dict()))
    assert data["passed"] is True
    assert data["tradeoffs"] == [{"metric": "accuracy", "max_regression": 0.05, "rationale": "ok",
                                  "applied_to": ["accuracy"], "exceeded": []}]
    row = next(r for r in data["rows"] if r["metric"] == "accuracy")
    assert row["verdict"] == "accepted" and row["accepted_by"] == "accuracy" and row["rule"] == ">= baseline - 0"


# ----------------------------------------------------------------------------- the policy, parsed once



def test_policy_parses_once_into_one_object():
    policy = GatePolicy.parse({"quality_tolerance": 0.01, "psi_alert": 0.3, "tolerance": {"accuracy": 0.02},
                               "accept": [{"metric": "label_psi", "max_regression": 0.1, "rationale": "why"}]},
                              {"latency_ms.*": {"relative": 0.5, "absolute": 25}})
    assert policy.quality_tolerance == 0.01 and policy.timing_tolerance == 0.5 and policy.psi_alert == 0.3
    assert policy.tolerances == {"latency_ms.*": Tolerance(25, 0.5), "accuracy": 0.02}
    assert policy.builtin == {"latency_ms.*"}
    assert [t.metric for t in policy.tradeoffs] == ["label_psi"]
    r = rows(gate(BASE, {**BASE, "accuracy": 0.91}, policy=policy))
    assert (r["accuracy"].verdict, r["accuracy"].rule) == ("pass", ">= baseline - 0.02")


@pytest.mark.parametrize("section, message", [
    ({"tolerances": {}}, "params.yaml: gate.tolerances is not a gate setting; did you mean 'tolerance'? "
                         "(known: quality_tolerance, timing_tolerance, psi_alert, review_tolerance, review_min_n, "
                         "require_review, tolerance, accept)"),
    ({"tolerance": {"accuracy": {"absolute": 0.1, "relativ": 0.2}}},
     "params.yaml: gate.tolerance.accuracy: unknown key 'relativ' (a tolerance has absolute, relative; "
     "did you mean 'relative'?)"),
    ({"tolerance": {"latency_ms": {"p95": {"absolut": 1, "relative": 0.2}}}},
     "params.yaml: gate.tolerance.latency_ms.p95: unknown key 'absolut' (a tolerance has absolute, relative; "
     "did you mean 'absolute'?)"),
    ({"psi_alert": -1}, "params.yaml: gate.psi_alert must be a number >= 0, got -1"),
    ([1], "params.yaml: gate must be a mapping (settings: quality_tolerance, timing_tolerance, psi_alert, "
          "review_tolerance, review_min_n, require_review, tolerance, accept)"),
])
def test_policy_refuses_unknown_keys_naming_the_closest(section, message):
    with pytest.raises(InvalidParams) as e:
        GatePolicy.parse(section)
    assert str(e.value) == message


@pytest.mark.parametrize("section, message", [
    ({"tolerance": {"acuracy": 0.5}},
     "params.yaml: gate.tolerance.acuracy: no metric of the results is 'acuracy'; did you mean 'accuracy'?"),
    ({"tolerance": {"labels.*.fnr": 0.5}},
     "params.yaml: gate.tolerance.labels.*.fnr: no metric of the results is 'labels.*.fnr'; did you mean "
     "'labels.positive.fpr'?"),
    ({"accept": [{"metric": "acuracy", "max_regression": 0.1, "rationale": "why"}]},
     "params.yaml: gate.accept[0]: metric 'acuracy' is not a metric of the results; did you mean 'accuracy'?"),
])
def test_policy_names_must_exist_in_the_results(section, message):
    policy = GatePolicy.parse(section)
    with pytest.raises(InvalidParams) as e:
        policy.check_names(gaterules.policy_keys([(BASE, BASE, None)]))
    assert str(e.value) == message


def test_policy_names_may_be_patterns_declared_patterns_or_output_psi():
    policy = GatePolicy.parse({"tolerance": {"labels.*.fpr": 0.1, "labels.<label>.precision": 0.1,
                                             "output_psi.label": 0.3}},
                              {"nothing.matches.*": 1})   # built-in defaults need not match
    psi = {"label": {"psi": 0.1, "band": "moderate", "bins": 2, "n_expected": 400, "n_actual": 400,
                     "smoothing": "s"}, "confidence": None, "output_tokens": None}
    policy.check_names(gaterules.policy_keys([(BASE, BASE, psi)]))
    with pytest.raises(InvalidParams, match="output_psi.label"):
        policy.check_names(gaterules.policy_keys([(BASE, BASE, None)]))


# ----------------------------------------------------------------------------- defaults by metric


def test_confidence_is_monitored_calibration_and_length_are_gated_with_documented_slack():
    base = {**BASE, "confidence": {"mean": 0.772, "p50": 0.8}, "calibration": {"ece": 0.05, "brier": 0.2},
            "output_tokens": {"mean": 0.87}, "output_chars": {"mean": 100.0}}
    # a better model a little less sure of itself, a little longer: passes
    better = {**base, "accuracy": 0.99, "confidence": {"mean": 0.767, "p50": 0.7},
              "calibration": {"ece": 0.069, "brier": 0.3}, "output_tokens": {"mean": 0.95},
              "output_chars": {"mean": 109.0}}
    r = rows(gate(base, better))
    assert r["confidence.mean"].verdict == r["confidence.p50"].verdict == r["calibration.brier"].verdict == "info"
    assert (r["calibration.ece"].verdict, r["calibration.ece"].rule) == ("pass", "<= baseline + 0.02")
    assert (r["output_tokens.mean"].verdict, r["output_tokens.mean"].rule) == ("pass", "within ±10 %")
    assert r["output_chars.mean"].verdict == "pass"
    # a summariser gone from 340 to 210 words, and a model badly calibrated: fail
    worse = {**base, "calibration": {"ece": 0.08, "brier": 0.2}, "output_chars": {"mean": 62.0}}
    r = rows(gate(base, worse))
    assert r["calibration.ece"].verdict == "fail" and r["output_chars.mean"].verdict == "fail"
    # params.yaml still overrides a declared default
    r = rows(gate(base, worse, {"output_chars.mean": Tolerance(relative=0.5), "calibration.ece": 0.05}))
    assert r["calibration.ece"].verdict == r["output_chars.mean"].verdict == "pass"


# ----------------------------------------------------------------------------- output PSI and timings


def psi_entry(value):
    return {"psi": value, "band": "x", "bins": 2, "n_expected": 400, "n_actual": 400,
            "smoothing": "additive smoothing: +0.5 per bin"}


def test_output_psi_is_gated_at_the_alert_band():
    psi = {"label": psi_entry(0.15), "confidence": psi_entry(0.2), "output_tokens": None}
    report = gate(BASE, BASE, output_psi=psi)
    r = rows(report)
    assert (r["output_psi.label"].verdict, r["output_psi.label"].rule) == ("pass", "PSI < 0.2")   # moderate: passes
    assert r["output_psi.confidence"].verdict == "fail"                                      # significant
    assert "output_psi.output_tokens" not in r
    assert [x.metric for x in report.failures] == ["output_psi.confidence"]
    accepted = gate(BASE, BASE, output_psi=psi, accepted=[{"metric": "output_psi.*", "max_regression": 0.3,
                                                           "rationale": "new tokenizer"}])
    assert accepted.passed and rows(accepted)["output_psi.confidence"].verdict == "accepted"
    policy = GatePolicy.parse({"psi_alert": 0.25})
    assert gate(BASE, BASE, policy=policy, output_psi=psi).passed


def test_output_psi_with_insufficient_data_is_not_gated():
    few = {"psi": None, "band": "insufficient data", "bins": 10, "n_expected": 12, "n_actual": 12, "smoothing": "s"}
    r = rows(gate(BASE, BASE, output_psi={"confidence": few}))
    assert r["output_psi.confidence"].verdict == "info"
    assert r["output_psi.confidence"].rule == "not gated: insufficient data (12 vs 12 outputs for 10 bins)"


def test_timings_measured_under_other_conditions_are_not_gated():
    slow = {**BASE, "latency_ms": {"p50": 900.0, "p95": 2000.0}, "tokens_per_second": 5.0}
    base, cand = doc(BASE), doc(slow)
    base["timing_conditions"] = {"runner": "openai", "concurrency": 1}
    cand["timing_conditions"] = {"runner": "openai", "concurrency": 8}
    r = rows(gate(base, cand))
    assert r["tokens_per_second"].verdict == r["latency_ms.p95"].verdict == "info"
    assert r["latency_ms.p95"].rule == ("not comparable, not gated: timings measured under other conditions: "
                                        "concurrency 1 -> 8")
    assert r["accuracy"].verdict == "pass"
    # the same conditions, or none recorded: compared as before
    cand["timing_conditions"] = dict(base["timing_conditions"])
    assert rows(gate(base, cand))["tokens_per_second"].verdict == "fail"
    assert rows(gate(doc(BASE), doc(slow)))["tokens_per_second"].verdict == "fail"


# ----------------------------------------------------------------------------- ties in the behavioural diff


def test_a_tie_answers_no_label_whatever_label_was_written_first():
    old = outputs({"id": "t", "label": "pos", "confidence": 0.5, "correct": False, "tie": True},
                  {"id": "u", "label": "neg", "confidence": 0.5, "correct": False, "tie": True})
    reordered = outputs({"id": "t", "label": "neg", "confidence": 0.5, "correct": False, "tie": True},
                        {"id": "u", "label": "pos", "confidence": 0.5, "correct": False, "tie": True})
    b = behaviour(old, reordered)
    assert b["label_changed"] == [] and b["changes"] == {}
    answered = outputs({"id": "t", "label": "pos", "confidence": 0.9, "correct": True},
                       {"id": "u", "label": "neg", "confidence": 0.5, "correct": False, "tie": True})
    assert behaviour(old, answered)["changes"] == {"t": ["wrong -> correct", "label tie -> pos"]}


# ----------------------------------------------------------------------------- the promotion tag's Gate: trailer


def gate_report(evalset: str, baseline: dict, candidate: dict, **kwargs):
    report = gate(baseline, candidate, **kwargs)
    report.model, report.evalset, report.baseline, report.candidate = "chat", evalset, "chat#prod", "chat@v1.1.0"
    return report


def test_trailer_ties_each_failing_eval_set_to_its_own_metrics():
    def trailer(reports, baseline):
        return gaterules.summary_line(reports, f"{baseline} (prod)")

    gen_base = {"output_tokens": {"mean": 0.87}, "output_chars": {"mean": 10.0}, "accuracy": 0.84}
    gen = gate_report("gen", gen_base, {"output_tokens": {"mean": 1.0}, "output_chars": {"mean": 12.0},
                                        "accuracy": 1.0})
    psi = gate_report("psi", BASE, BASE)                       # passes: not named among the failures
    sem = gate_report("sem", BASE, {**BASE, "accuracy": 0.9})
    assert trailer([gen, psi, sem], "v1.0.0") == (
        "failed against v1.0.0 (prod): gen: output_tokens.mean, output_chars.mean; sem: accuracy")
    assert trailer([psi], "v1.0.0") == "passed against v1.0.0 (prod) on psi"
    accepted = gate_report("sem", BASE, {**BASE, "accuracy": 0.9},
                           accepted=[{"metric": "accuracy", "max_regression": 0.05, "rationale": "cheaper"}])
    assert trailer([psi, accepted], "v1.0.0") == (
        "passed against v1.0.0 (prod) on psi, sem (accepted tradeoffs: sem: accuracy)")
    assert trailer([gen, accepted], "v1.0.0") == (
        "failed against v1.0.0 (prod): gen: output_tokens.mean, output_chars.mean "
        "(accepted tradeoffs: sem: accuracy)")


def test_the_promotion_gate_without_a_prod_holder_has_nothing_to_beat(tmp_path):
    from gitmodel.gating import promotion_gate
    from gitmodel.refs import Version

    # decided before any repository is read: tmp_path is no repository at all
    outcome = promotion_gate(tmp_path, "chat", Version.parse("v1.0.0"), None, required=True)
    assert (outcome.status, outcome.passed, outcome.reports) == (gaterules.NO_BASELINE, False, [])
    assert outcome.to_dict() == {"model": "chat", "baseline": None, "candidate": None, "passed": False,
                                 "status": "none", "results": [], "review": None,
                                 "summary": "none: no version holds prod yet, so there is no holder to beat"}
