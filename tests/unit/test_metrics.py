"""Metrics: hand-computed values, the declarations (metricspecs) and the result schema (resultfiles)."""
from __future__ import annotations

import copy
import json
import math

import pytest

from gitmodel import metrics, metricspecs, resultfiles
from gitmodel.errors import InvalidMetrics, InvalidParams
from gitmodel.metrics import DEFAULT_REFUSAL_PATTERNS, compute, correct
from gitmodel.metricspecs import HIGHER, INFO, LOWER, QUALITY, STABLE, TIMING, iter_leaves, spec
from gitmodel.resultfiles import validate_metrics, validate_output
from gitmodel.runners.base import Example, Prediction

ABC = ("a", "b", "c")


def clf(id, expected, predicted, category=None, confidence=0.5, tie=False, latency=10.0, labels=ABC):
    return (
        Example(id=id, input=f"input {id}", expected=expected, labels=labels, category=category),
        Prediction(output=predicted, label=predicted, confidence=confidence, tie=tie,
                   output_tokens=1, latency_ms=latency),
    )


def gen(id, expected, output, tokens, latency, category=None):
    return (
        Example(id=id, input=f"input {id}", expected=expected, category=category),
        Prediction(output=output, output_tokens=tokens, latency_ms=latency),
    )


def run(pairs, **kwargs):
    return compute([e for e, _ in pairs], [p for _, p in pairs], **kwargs)


# Confusion matrix over the six examples with `expected` (rows expected, columns predicted):
#        a  b  c
#   a    1  1  0
#   b    0  2  0
#   c    1  0  1
# c7 has no expected and is a tie: it answers no label, so it counts in ties and confidence only.
CLASSIFICATION = [
    clf("c1", "a", "a", "x", confidence=0.9, latency=10),
    clf("c2", "a", "b", "x", confidence=0.6, latency=20),
    clf("c3", "b", "b", "y", confidence=0.8, latency=30),
    clf("c4", "b", "b", "y", confidence=0.7, latency=40),
    clf("c5", "c", "a", "y", confidence=0.5, latency=50),
    clf("c6", "c", "c", None, confidence=1.0, latency=60),
    clf("c7", None, "a", "x", confidence=0.4, latency=70, tie=True),
]

GENERATION = [
    gen("g1", "Paris", "  Paris\n", tokens=2, latency=100, category="geo"),
    gen("g2", "4", "5", tokens=1, latency=50, category="math"),
    gen("g3", None, "I'm sorry, but I can't help with that.", tokens=10, latency=200),
    gen("g4", None, "I'm sorry to hear that.", tokens=9, latency=150),
]


def test_classification_metrics_by_hand():
    assert run(CLASSIFICATION) == {
        "n": 7,
        "accuracy": 0.666667,                                   # 4 of 6
        "accuracy_by_category": {"x": 0.5, "y": 0.666667},      # c6 has no category, c7 no expected
        "labels": {
            # a: TP 1 (c1), FP 1 (c5), FN 1 (c2), TN 3
            "a": {"precision": 0.5, "recall": 0.5, "fpr": 0.25, "support": 2},
            # b: TP 2, FP 1 (c2), FN 0, TN 3
            "b": {"precision": 0.666667, "recall": 1.0, "fpr": 0.25, "support": 2},
            # c: TP 1, FP 0, FN 1 (c5), TN 4
            "c": {"precision": 1.0, "recall": 0.5, "fpr": 0.0, "support": 2},
        },
        "label_distribution": {"a": 0.285714, "b": 0.428571, "c": 0.142857},   # 2, 3, 1 of 7: c7 tied
        "expected_distribution": {"a": 0.333333, "b": 0.333333, "c": 0.333333},
        # no label_psi: 6 examples for 3 labels is under 5 per label (insufficient data)
        "ties": 1,
        # sorted 0.4 .. 1.0 step 0.1; p10 at position 0.6: 0.4 + 0.6 * 0.1
        "confidence": {"mean": 0.7, "p10": 0.46, "p50": 0.7},
        # bins 0.5 (c5 wrong), 0.6 (c2 wrong), 0.7 (c4), 0.8 (c3), 0.9-1.0 (c1, c6):
        # (0.5 + 0.6 + 0.3 + 0.2 + |2 - 1.9|) / 6
        "calibration": {"ece": 0.283333},
        # 10 .. 70 step 10; p95 at position 5.7: 60 + 0.7 * 10
        "latency_ms": {"p50": 40.0, "p95": 67.0},
    }


def test_generation_metrics_by_hand():
    assert run(GENERATION) == {
        "n": 4,
        "accuracy": 0.5,                                  # g1 matches once stripped, g2 does not
        "accuracy_by_category": {"geo": 1.0, "math": 0.0},
        # tokens 1, 2, 9, 10: p50 between 2 and 9; p95 at position 2.85: 9 + 0.85
        "output_tokens": {"mean": 5.5, "p50": 5.5, "p95": 9.85},
        "output_chars": {"mean": 17.5},                   # (8 + 1 + 38 + 23) / 4
        "refusal_rate": 0.25,                             # g3; g4 only apologises
        # 50, 100, 150, 200: p95 at position 2.85: 150 + 0.85 * 50
        "latency_ms": {"p50": 125.0, "p95": 192.5},
        "tokens_per_second": 44.0,                        # 22 tokens in 0.5 s
    }


def test_mixed_run_accuracy_spans_both_kinds():
    result = run(CLASSIFICATION + GENERATION)
    assert result["n"] == 11
    assert result["accuracy"] == 0.625                   # (4 + 1) of 8 with expected
    assert result["accuracy_by_category"] == {"geo": 1.0, "math": 0.0, "x": 0.5, "y": 0.666667}
    # label metrics are unchanged by generation examples, and length metrics by classifications
    assert result["labels"] == run(CLASSIFICATION)["labels"]
    assert result["output_tokens"] == run(GENERATION)["output_tokens"]
    assert result["tokens_per_second"] == 44.0
    # latency covers every example: 10..70 and 50..200
    assert result["latency_ms"]["p50"] == 50.0


def test_zero_count_labels_and_zero_over_zero():
    pairs = [clf(f"e{i}", "x", "x", labels=("x", "y", "z")) for i in range(5)]
    result = run(pairs)
    assert result["labels"] == {
        # every example expects x: FP + TN = 0, so fpr 0/0 -> 0.0
        "x": {"precision": 1.0, "recall": 1.0, "fpr": 0.0, "support": 5},
        # never predicted nor expected: precision and recall 0/0 -> 0.0
        "y": {"precision": 0.0, "recall": 0.0, "fpr": 0.0, "support": 0},
        "z": {"precision": 0.0, "recall": 0.0, "fpr": 0.0, "support": 0},
    }
    assert result["label_distribution"] == {"x": 1.0, "y": 0.0, "z": 0.0}
    assert result["expected_distribution"] == {"x": 1.0, "y": 0.0, "z": 0.0}
    assert result["label_psi"] == 0.0     # one label on both sides: 5 examples are enough
    assert result["ties"] == 0


def test_fraud_false_positive_rate():
    # the fraud team's "1.2 % became 1.8 %": 1000 legitimate transactions, 12 then 18 flagged
    def fraud_run(flagged):
        pairs = [clf(f"t{i}", "ok", "fraud" if i < flagged else "ok", labels=("ok", "fraud"))
                 for i in range(1000)]
        pairs += [clf(f"f{i}", "fraud", "fraud", labels=("ok", "fraud")) for i in range(10)]
        return run(pairs)["labels"]["fraud"]

    assert fraud_run(12)["fpr"] == 0.012
    assert fraud_run(18)["fpr"] == 0.018
    assert spec("labels.fraud.fpr").direction is LOWER


def test_label_shift_raises_psi():
    balanced = [clf(f"e{i}", "ab"[i % 2], "ab"[i % 2], labels=("a", "b")) for i in range(10)]
    shifted = [clf(f"e{i}", "ab"[i % 2], "a", labels=("a", "b")) for i in range(10)]
    assert run(balanced)["label_psi"] == 0.0
    # predicted 10 a, 0 b against 5/5, each count + 0.5: shares 10.5/11, 0.5/11 against 1/2, 1/2
    a, b = 10.5 / 11, 0.5 / 11
    expected = (a - 0.5) * math.log(a / 0.5) + (b - 0.5) * math.log(b / 0.5)
    assert run(shifted)["label_psi"] == round(expected, 6)
    # under 5 examples per label: insufficient data, left out rather than given a band
    assert "label_psi" not in run(shifted[:9])


def test_metrics_that_do_not_apply_are_absent():
    assert run([]) == {"n": 0}
    # no expected anywhere: no accuracy, per-label or expected-side metrics
    result = run([clf("e1", None, "a"), clf("e2", None, "b")])
    assert set(result) == {"n", "label_distribution", "ties", "confidence", "latency_ms"}
    # a runner that gives no confidence and counts no tokens
    pairs = [(Example(id="e", input="i", labels=("a", "b")), Prediction(output="a", label="a")),
             (Example(id="g", input="i"), Prediction(output="text"))]
    result = run(pairs)
    assert "confidence" not in result and "tokens_per_second" not in result
    assert result["output_tokens"] == {"mean": 0.0, "p50": 0.0, "p95": 0.0}


def test_generation_is_exact_match_after_strip():
    ex = Example(id="g", input="i", expected=" yes ")
    assert correct(ex, Prediction(output="yes\n")) is True
    assert correct(ex, Prediction(output="Yes")) is False
    assert correct(Example(id="g", input="i"), Prediction(output="x")) is None
    clf_ex = Example(id="c", input="i", expected="a", labels=("a", "b"))
    assert correct(clf_ex, Prediction(output="a", label="a")) is True
    assert correct(clf_ex, Prediction(output="a", label=None)) is False


@pytest.mark.parametrize("text", [
    "I can't help with that.", "I can’t do this", "I cannot comply.", "i CANNOT",
    "I'm sorry, but that is not possible.", "I am sorry, I must decline.",
    "As an AI language model, I have no opinion.", "I won't do that.", "I will not write that.",
    "I'm unable to assist.", "I am not able to share that.", "Sadly I'm unable to help here.",
    "This request: unable to help.", "I'm not allowed to discuss it.", "I apologize, but no.",
])
def test_default_refusal_patterns_match(text):
    assert run([gen("g", None, text, 1, 1)])["refusal_rate"] == 1.0


@pytest.mark.parametrize("text", [
    "I'm sorry to hear that. Restart the router.", "Paris", "You can reset it in Settings.",
    "The AI team will call you.", "Scan the canvas.", "I am happy to help.",
])
def test_default_refusal_patterns_do_not_match(text):
    assert run([gen("g", None, text, 1, 1)])["refusal_rate"] == 0.0


def test_custom_refusal_patterns():
    pairs = [gen("g1", None, "NOPE.", 1, 1), gen("g2", None, "I can't", 1, 1)]
    assert run(pairs, refusal_patterns=[r"^nope"])["refusal_rate"] == 0.5
    assert run(pairs, refusal_patterns=[])["refusal_rate"] == 0.0
    # params.yaml's patterns add to the defaults
    assert run(pairs, refusal_patterns=[*DEFAULT_REFUSAL_PATTERNS, r"^nope"])["refusal_rate"] == 1.0


def test_bad_refusal_pattern_names_it():
    with pytest.raises(InvalidParams) as raised:
        run([gen("g", None, "x", 1, 1)], refusal_patterns=["ok", "(unclosed"])
    assert str(raised.value) == (
        "params.yaml: eval.refusal_patterns: '(unclosed' is not a valid regular expression: "
        "missing ), unterminated subpattern at position 0"
    )


def test_length_mismatch_is_a_programming_error():
    with pytest.raises(ValueError, match="2 examples but 1 predictions"):
        compute([Example(id="a", input="i"), Example(id="b", input="i")], [Prediction(output="x")])


def test_values_are_plain_json_numbers_with_six_decimals():
    pairs = CLASSIFICATION + GENERATION + [clf("c8", "b", "b", confidence=1 / 3, latency=1 / 3)]
    result = run(pairs)
    for key, value in iter_leaves(result):
        assert type(value) in (int, float), key
        assert value == round(value, 6), key
    assert json.loads(json.dumps(result)) == result


def test_classification_with_dotted_and_unicode_labels():
    labels = ("v1.2", "négatif")
    result = run([clf("e1", "v1.2", "v1.2", category="a.b", labels=labels),
                  clf("e2", "négatif", "v1.2", category="a.b", labels=labels)])
    assert result["labels"]["v1.2"]["precision"] == 0.5
    assert spec("labels.v1.2.precision").pattern == "labels.<label>.precision"
    assert spec("accuracy_by_category.a.b").direction is HIGHER


# --------------------------------------------------------------------------- the registry


def scored(id, expected, scores: dict):
    """A classification as a runner scores it: the label, confidence and tie from log-probabilities."""
    from gitmodel.runners.base import classification

    labels = tuple(scores)
    region = "eu" if int(id[1:]) % 2 else "us"
    return (Example(id=id, input=f"input {id}", expected=expected, labels=labels,
                    fields={"id": id, "region": region}),
            classification(labels, [scores[label] for label in labels]))


def rich_result() -> dict:
    """A run that makes every declared metric appear (label_psi needs 5 examples per label,
    the Brier score label scores, the bias gaps two slices of at least min_slice examples)."""
    answers = [{"a": -1.0, "b": -1.5, "c": -2.0}, {"a": -2.0, "b": -1.0, "c": -1.5},
               {"a": -1.5, "b": -2.0, "c": -1.0}, {"a": -1.0, "b": -1.0, "c": -2.0}]
    more = [scored(f"s{i}", "abc"[i % 3], answers[i % 4]) for i in range(20)]
    return run(CLASSIFICATION + GENERATION + more, slices=("region",), min_slice=5)


def test_every_key_compute_produces_has_a_spec():
    # The meta-test that keeps directions complete: a new metric without a
    # declaration fails here, before a gate can meet an unknown key.
    for key, _ in iter_leaves(rich_result()):
        found = spec(key)
        assert found.name == key
        assert found.direction in (HIGHER, LOWER, STABLE, INFO)
        assert found.kind in (QUALITY, TIMING)
        assert found.description


def test_every_declared_metric_is_produced():
    # and the other way: no stale declaration that nothing computes
    produced = {spec(key).pattern for key, _ in iter_leaves(rich_result())}
    assert produced == {s.pattern for s in metricspecs.declared()}


@pytest.mark.parametrize("key, direction, kind", [
    ("n", INFO, QUALITY),
    ("accuracy", HIGHER, QUALITY),
    ("accuracy_by_category.food", HIGHER, QUALITY),
    ("labels.positive.precision", HIGHER, QUALITY),
    ("labels.positive.recall", HIGHER, QUALITY),
    ("labels.positive.fpr", LOWER, QUALITY),
    ("labels.positive.support", INFO, QUALITY),
    ("label_distribution.positive", INFO, QUALITY),
    ("expected_distribution.positive", INFO, QUALITY),
    ("label_psi", LOWER, QUALITY),
    ("ties", LOWER, QUALITY),
    ("confidence.mean", INFO, QUALITY),
    ("confidence.p10", INFO, QUALITY),
    ("confidence.p50", INFO, QUALITY),
    ("calibration.ece", LOWER, QUALITY),
    ("calibration.brier", INFO, QUALITY),
    ("output_tokens.mean", STABLE, QUALITY),
    ("output_tokens.p50", STABLE, QUALITY),
    ("output_tokens.p95", STABLE, QUALITY),
    ("output_chars.mean", STABLE, QUALITY),
    ("refusal_rate", LOWER, QUALITY),
    ("latency_ms.p50", LOWER, TIMING),
    ("latency_ms.p95", LOWER, TIMING),
    ("tokens_per_second", HIGHER, TIMING),
])
def test_spec_directions(key, direction, kind):
    found = spec(key)
    assert (found.name, found.direction, found.kind) == (key, direction, kind)


@pytest.mark.parametrize("key", [
    "labels", "labels.positive", "accuracy.x", "accuracy_by_category", "latency_ms.p99",
    "confidence", "nope", "", "labels.positive.f1",
])
def test_spec_unknown_key(key):
    with pytest.raises(KeyError):
        spec(key)


def test_directions_render_as_strings():
    assert f"{spec('accuracy').direction} {spec('latency_ms.p50').kind}" == "higher timing"
    assert json.dumps({"d": spec("ties").direction, "k": spec("latency_ms.p50").kind}) == \
        '{"d": "lower", "k": "timing"}'


def test_iter_leaves():
    nested = {"n": 3, "labels": {"a": {"fpr": 0.1, "support": 2}}, "empty": {}, "x": 1.5}
    assert list(iter_leaves(nested)) == [
        ("n", 3), ("labels.a.fpr", 0.1), ("labels.a.support", 2), ("x", 1.5)]


def test_declaring_a_metric_twice_is_refused():
    with pytest.raises(ValueError, match="declared twice"):
        metricspecs.declare("accuracy", HIGHER, "again")


def test_a_headline_metric_must_be_one_fixed_key():
    with pytest.raises(ValueError, match="one fixed key"):
        metricspecs.declare("accuracy_by_category.<category>.x", HIGHER, "per category", headline=5)
    assert "accuracy_by_category.<category>.x" not in {s.pattern for s in metricspecs.declared()}


def test_headline_keys_come_from_the_declarations_in_headline_order():
    assert metricspecs.headline_keys() == ("n", "accuracy", "refusal_rate", "output_tokens.mean")
    flagged = {s.pattern for s in metricspecs.declared() if s.headline is not None}
    assert flagged == set(metricspecs.headline_keys())
    assert spec("refusal_rate").headline == 3 and spec("latency_ms.p50").headline is None


def test_files_keep_the_declaration_order():
    # compute() writes its keys in registration order; the declarations list them in that order too
    tops = list(dict.fromkeys(s.pattern.split(".")[0] for s in metricspecs.declared()))
    assert list(rich_result()) == [t for t in tops if t in rich_result()]
    assert list(metrics._COMPUTERS) == tops


def test_computing_an_undeclared_key_is_refused():
    with pytest.raises(ValueError, match="declared nowhere"):
        metrics.computes("f1")
    with pytest.raises(ValueError, match="computed by both"):
        metrics.computes("accuracy")(lambda run: None)


def test_default_refusal_patterns_are_valid():
    assert len(metrics.compile_refusal_patterns(DEFAULT_REFUSAL_PATTERNS)) == len(DEFAULT_REFUSAL_PATTERNS)


# --------------------------------------------------------------------------- the schemas

SOURCE = "metrics/chat/support.json"


def full_doc() -> dict:
    return {
        "schema_version": 1,
        "model": {"name": "chat", "path": "models/chat.gguf", "md5": "0" * 32},
        "evalset": {"name": "support", "path": "evalsets/support.jsonl", "md5": "f" * 32},
        "params": {"temperature": 0, "seed": 0, "max_tokens": 64, "n_ctx": 512, "runner": "llama",
                   "refusal_patterns": list(DEFAULT_REFUSAL_PATTERNS), "something_new": {"x": 1}},
        "runner": {"name": "llama", "version": "0.3.8", "llama_cpp_version": None, "n_threads": 4},
        "metrics": rich_result(),
    }


def test_schema_accepts_computed_metrics():
    validate_metrics(full_doc(), SOURCE)
    validate_metrics(json.loads(json.dumps(full_doc())), SOURCE)


def test_schema_accepts_an_untracked_python_model():
    doc = full_doc()
    doc["model"].update(path=None, md5=None)
    doc["runner"] = {"name": "python", "version": "1.0"}
    doc["metrics"] = {"n": 0}
    validate_metrics(doc, SOURCE)


def with_change(change) -> dict:
    doc = copy.deepcopy(full_doc())
    change(doc)
    return doc


@pytest.mark.parametrize("change, message", [
    (lambda d: d["metrics"].update(accuracy="high"),
     "field metrics.accuracy: 'high' is not of type 'number'"),
    (lambda d: d["metrics"]["labels"]["a"].update(fpr=None),
     "field metrics.labels.a.fpr: None is not of type 'number'"),
    (lambda d: d["metrics"].update(ties=True),
     "field metrics.ties: True is not of type 'number'"),
    (lambda d: d["metrics"]["confidence"].update(p10=[0.1]),
     "field metrics.confidence.p10: [0.1] is not of type 'number'"),
    (lambda d: d["metrics"].update(accuracy=float("nan")),
     "field metrics.accuracy: nan is not a finite number"),
    (lambda d: d["metrics"]["latency_ms"].update(p95=float("inf")),
     "field metrics.latency_ms.p95: inf is not a finite number"),
    (lambda d: d["model"].pop("md5"),
     "field model.md5: required but missing"),
    (lambda d: d.pop("evalset"),
     "field evalset: required but missing"),
    (lambda d: d["evalset"].update(md5="not-an-md5"),
     "field evalset.md5: 'not-an-md5' does not match '^[0-9a-f]{32}(\\\\.dir)?$'"),
    (lambda d: d.update(schema_version=2),
     "field schema_version: 1 was expected"),
    (lambda d: d.update(extra=1),
     "field extra: unknown field (not in schema_version 1)"),
    (lambda d: d["params"].update(seed="x"),
     "field params.seed: 'x' is not of type 'integer'"),
    (lambda d: d["params"]["refusal_patterns"].__setitem__(1, 3),
     "field params.refusal_patterns[1]: 3 is not of type 'string'"),
    (lambda d: d["runner"].update(llama_cpp_version=3),
     "field runner.llama_cpp_version: 3 is not of type 'string', 'null'"),
])
def test_schema_rejects_with_exact_message(change, message):
    with pytest.raises(InvalidMetrics) as raised:
        validate_metrics(with_change(change), SOURCE)
    assert str(raised.value) == f"{SOURCE}: {message}"
    assert raised.value.hint


def test_schema_rejects_a_document_that_is_not_an_object():
    with pytest.raises(InvalidMetrics) as raised:
        validate_metrics([1], SOURCE)
    assert str(raised.value) == f"{SOURCE}: [1] is not of type 'object'"


def output_record(**changes) -> dict:
    record = {"id": "c1", "output": "a", "label": "a", "confidence": 0.9, "correct": True, "tie": False,
              "output_tokens": 1, "scores": {"a": -0.1, "b": -2.4}}
    record.update(changes)
    return record


def test_outputs_schema():
    validate_output(output_record(), "o.jsonl:1")
    validate_output(output_record(label=None, confidence=None, correct=None, scores=None,
                                  output="free text", output_tokens=12), "o.jsonl:2")
    with pytest.raises(InvalidMetrics) as raised:
        validate_output(output_record(confidence=1.5), "metrics/chat/support.outputs.jsonl:3")
    assert str(raised.value) == \
        "metrics/chat/support.outputs.jsonl:3: field confidence: 1.5 is greater than the maximum of 1"
    with pytest.raises(InvalidMetrics, match=r"^o.jsonl:4: field tie: required but missing$"):
        validate_output({k: v for k, v in output_record().items() if k != "tie"}, "o.jsonl:4")
    with pytest.raises(InvalidMetrics, match=r"^o.jsonl:5: field latency_ms: unknown field"):
        validate_output(output_record(latency_ms=3.0), "o.jsonl:5")
    with pytest.raises(InvalidMetrics, match=r"^o.jsonl:6: field scores.b: 'x' is not of type 'number'$"):
        validate_output(output_record(scores={"a": 0.0, "b": "x"}), "o.jsonl:6")
    with pytest.raises(InvalidMetrics, match=r"^o.jsonl:7: field scores.b: -inf is not a finite number$"):
        validate_output(output_record(scores={"a": 0.0, "b": float("-inf")}), "o.jsonl:7")
    with pytest.raises(InvalidMetrics, match=r"^o.jsonl:8: field confidence: nan is not a finite number$"):
        validate_output(output_record(confidence=float("nan")), "o.jsonl:8")


def schemas_without_description(schema, path="$"):
    """Every property schema below `schema` that lacks a description (STYLE 11)."""
    missing = []
    if isinstance(schema, dict):
        if "description" not in schema:
            missing.append(path)
        for name, sub in schema.get("properties", {}).items():
            missing += schemas_without_description(sub, f"{path}.{name}")
        for name, sub in schema.get("$defs", {}).items():
            missing += schemas_without_description(sub, f"{path}.$defs.{name}")
        for keyword in ("items", "additionalProperties", "propertyNames"):
            if isinstance(schema.get(keyword), dict):
                missing += schemas_without_description(schema[keyword], f"{path}.{keyword}")
    return missing


@pytest.mark.parametrize("name", ["metrics", "outputs"])
def test_every_schema_field_has_a_description(name):
    assert schemas_without_description(resultfiles.load_schema(name)) == []


def test_load_schema_is_cached():
    assert resultfiles.load_schema("metrics") is resultfiles.load_schema("metrics.schema.json")
    assert resultfiles.load_schema("metrics")["properties"]["schema_version"]["const"] == resultfiles.SCHEMA_VERSION


def test_label_psi_of_a_never_predicted_label_is_smoothed_and_stated():
    """Three labels, "neutral" expected 10 times and never answered: its term is half an example's
    weight (additive smoothing, 0.5 per label), not what a floor on the share decides."""
    labels = ("positive", "negative", "neutral")
    pairs = [clf(f"p{i}", "positive", "positive", labels=labels) for i in range(45)]
    pairs += [clf(f"n{i}", "negative", "negative", labels=labels) for i in range(45)]
    pairs += [clf(f"u{i}", "neutral", "positive" if i % 2 else "negative", labels=labels) for i in range(10)]
    e = [(c + 0.5) / 101.5 for c in (45, 45, 10)]
    a = [(c + 0.5) / 101.5 for c in (50, 50, 0)]
    expected = sum((x - y) * math.log(x / y) for x, y in zip(a, e))
    assert run(pairs)["label_psi"] == round(expected, 6)
    assert "additive smoothing of 0.5 per label" in spec("label_psi").description
    assert "insufficient data" in spec("label_psi").description
