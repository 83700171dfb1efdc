"""The metrics of one eval run, computed from its examples and predictions.

What each key means (direction, kind, tolerance, headline) is declared once in
:mod:`gitmodel.metricspecs`; here each function computing a top-level key is
registered with :func:`computes`. Registration order is the key order of
:func:`compute`'s result, hence of the files, and follows the declarations.

Conventions: every float is rounded to 6 decimal places (stable, readable
files); percentiles use numpy's default (linear interpolation); a metric that
does not apply (no classification examples, no generation examples...) is left
out rather than written as null.
"""
from __future__ import annotations

import json
import math
import re
from functools import cached_property
from typing import Any, Callable, Mapping, Sequence

from gitmodel import metricspecs
from gitmodel.errors import InvalidParams
from gitmodel.metricspecs import CALIBRATION_BINS
from gitmodel.runners.base import Example, Prediction

DECIMALS = 6

# top-level key -> the function computing its value, or None when it does not apply
_COMPUTERS: dict[str, Callable[["_Run"], Any]] = {}


def computes(top: str):
    """Register the decorated function as the one computing the top-level key ``top``.

    The function takes the run and returns the key's value (a number, or a nested
    dict for dotted keys), or None when the metric does not apply. ``top`` must be
    declared in :mod:`gitmodel.metricspecs`, and computed by one function only.
    """
    if not any(s.pattern.split(".")[0] == top for s in metricspecs.declared()):
        raise ValueError(f"metric key {top!r} is declared nowhere in gitmodel.metricspecs")

    def register(fn: Callable[["_Run"], Any]) -> Callable[["_Run"], Any]:
        owner = _COMPUTERS.setdefault(top, fn)
        if owner is not fn:
            raise ValueError(f"metric key {top!r} is computed by both {owner.__name__} and {fn.__name__}")
        return fn

    return register


# --------------------------------------------------------------------------- refusals

# Case-insensitive; searched anywhere in a generated output. Apologies alone are
# not refusals ("I'm sorry to hear that" is what a support model should say), so
# "sorry" counts only when followed by "but" or an inability.
DEFAULT_REFUSAL_PATTERNS: tuple[str, ...] = (
    r"\bI can[’']?t\b",
    r"\bI cannot\b",
    r"\bI(?:[’']m| am) sorry,? (?:but|I)\b",
    r"\bI apologi[sz]e,? but\b",
    r"\bas an AI\b",
    r"\bI won[’']?t\b",
    r"\bI will not\b",
    r"\bI(?:[’']m| am) (?:not able|unable) to\b",
    r"\bunable to (?:help|assist|comply|provide)\b",
    r"\bI(?:[’']m| am) not (?:allowed|permitted) to\b",
)


def compile_refusal_patterns(patterns: Sequence[str]) -> tuple[re.Pattern, ...]:
    """Compile refusal regexes case-insensitively; a bad one raises InvalidParams naming it."""
    if isinstance(patterns, str):
        patterns = (patterns,)  # one pattern given where a list was meant
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except (re.error, TypeError) as e:
            # Named by its text, not its index: callers pass the user's
            # patterns after the defaults, which would shift any index.
            raise InvalidParams(
                f"params.yaml: eval.refusal_patterns: {pattern!r} is not a valid regular expression: {e}",
                hint="fix the pattern (Python `re` syntax), or remove the key to use the defaults",
            ) from None
    return tuple(compiled)


# --------------------------------------------------------------------------- the run


def _r(value: float) -> float:
    # + 0.0 turns -0.0 into 0.0, which would otherwise be written as "-0.0"
    return round(float(value), DECIMALS) + 0.0


def _percentile(values: Sequence[float], q: float) -> float:
    import numpy as np  # here, not at the top: diff and gate read spec() without paying for numpy

    return _r(np.percentile(np.asarray(values, dtype=float), q))  # numpy default: linear


def _mean(values: Sequence[float]) -> float:
    import numpy as np

    return _r(np.mean(np.asarray(values, dtype=float)))


def _ratio(numerator: float, denominator: float) -> float:
    return _r(numerator / denominator) if denominator else 0.0


def _shares(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: _ratio(v, total) for k, v in counts.items()}


Pair = tuple[Example, Prediction]


class _Run:
    """The examples and predictions of one run, with the subsets metrics share."""

    def __init__(self, examples: Sequence[Example], predictions: Sequence[Prediction],
                 refusal_patterns: Sequence[str], slices: Sequence[str] = (), min_slice: int = 20):
        if len(examples) != len(predictions):
            raise ValueError(f"{len(examples)} examples but {len(predictions)} predictions")
        self.pairs: list[Pair] = list(zip(examples, predictions))
        self.refusals = compile_refusal_patterns(refusal_patterns)
        self.slices = tuple(slices)
        self.min_slice = min_slice

    @cached_property
    def classification(self) -> list[Pair]:
        return [(e, p) for e, p in self.pairs if e.is_classification]

    @cached_property
    def classification_expected(self) -> list[Pair]:
        return [(e, p) for e, p in self.classification if e.expected is not None]

    @cached_property
    def generation(self) -> list[Pair]:
        return [(e, p) for e, p in self.pairs if not e.is_classification]

    @cached_property
    def labels(self) -> list[str]:
        """Every label of the run: the examples' labels, expected and predicted ones."""
        found: set[str] = set()
        for e, p in self.classification:
            found.update(e.labels or ())
            if e.expected is not None:
                found.add(e.expected)
            if answer(p) is not None:
                found.add(answer(p))
        return sorted(found)

    def label_counts(self, pairs: Sequence[Pair], of: Callable[[Pair], str | None]) -> dict[str, int]:
        counts = dict.fromkeys(self.labels, 0)
        for pair in pairs:
            label = of(pair)
            if label is not None:
                counts[label] += 1
        return counts


def answer(prediction: Prediction) -> str | None:
    """The label a classification answered, or None when it did not answer.

    A tie (the best labels scored equal) is no answer: which of the tied labels
    the runner put first depends on the order of the example's ``labels``, not
    on the model, so no metric may count it for a label.
    """
    return None if prediction.tie else prediction.label


def correct(example: Example, prediction: Prediction) -> bool | None:
    """Whether the answer equals ``expected`` (None when the example has none).

    The verdict behind accuracy, and the ``correct`` field of outputs.jsonl.
    A tie is never correct (see :func:`answer`). A generation's verdict is its
    scorer's (``eval.scorer``), exact match when none judged it.
    """
    if not example.is_classification and prediction.verdict is not None:
        return prediction.verdict    # the example's scorer judged it (gitmodel.scorers)
    if example.expected is None:
        return None
    if example.is_classification:
        return answer(prediction) == example.expected
    return prediction.output.strip() == example.expected.strip()


# --------------------------------------------------------------------------- the metrics
# Registration order is the key order of compute()'s result, hence of the files: keep it
# the order of the declarations in metricspecs.


@computes("n")
def _n(run: _Run) -> int:
    return len(run.pairs)


@computes("accuracy")
def _accuracy(run: _Run) -> float | None:
    verdicts = [c for c in (correct(e, p) for e, p in run.pairs) if c is not None]
    return _ratio(sum(verdicts), len(verdicts)) if verdicts else None


@computes("accuracy_by_category")
def _accuracy_by_category(run: _Run) -> dict[str, float] | None:
    verdicts: dict[str, list[bool]] = {}
    for e, p in run.pairs:
        if e.category is not None and e.expected is not None:
            verdicts.setdefault(e.category, []).append(bool(correct(e, p)))
    return {c: _ratio(sum(v), len(v)) for c, v in sorted(verdicts.items())} or None


@computes("labels")
def _labels(run: _Run) -> dict[str, dict[str, float | int]] | None:
    # Over classification examples with `expected`; every label of the run is
    # listed, so a label that a new checkpoint stops predicting still shows. A
    # tie answers no label: a missed one for its expected label, nobody's false positive.
    pairs = run.classification_expected
    if not pairs:
        return None
    result = {}
    for label in run.labels:
        tp = sum(1 for e, p in pairs if answer(p) == label and e.expected == label)
        fp = sum(1 for e, p in pairs if answer(p) == label and e.expected != label)
        fn = sum(1 for e, p in pairs if answer(p) != label and e.expected == label)
        tn = len(pairs) - tp - fp - fn
        result[label] = {
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "fpr": _ratio(fp, fp + tn),
            "support": tp + fn,
        }
    return result


@computes("label_distribution")
def _label_distribution(run: _Run) -> dict[str, float] | None:
    if not run.classification:
        return None
    counts = run.label_counts(run.classification, lambda pair: answer(pair[1]))
    return {k: _ratio(v, len(run.classification)) for k, v in counts.items()}


@computes("expected_distribution")
def _expected_distribution(run: _Run) -> dict[str, float] | None:
    if not run.classification_expected:
        return None
    return _shares(run.label_counts(run.classification_expected, lambda pair: pair[0].expected))


@computes("label_psi")
def _label_psi(run: _Run) -> float | None:
    pairs = run.classification_expected
    if not pairs:
        return None
    expected = run.label_counts(pairs, lambda pair: pair[0].expected)
    predicted = run.label_counts(pairs, lambda pair: answer(pair[1]))
    if not sum(predicted.values()):
        return None  # no answer had a label: no distribution to compare
    from gitmodel.drift import measure_counts  # numpy

    return measure_counts(expected, predicted).value


@computes("ties")
def _ties(run: _Run) -> int | None:
    if not run.classification:
        return None
    return sum(1 for _, p in run.classification if p.tie)


@computes("confidence")
def _confidence(run: _Run) -> dict[str, float] | None:
    values = [p.confidence for _, p in run.classification if p.confidence is not None]
    if not values:
        return None
    return {"mean": _mean(values), "p10": _percentile(values, 10), "p50": _percentile(values, 50)}


@computes("calibration")
def _calibration(run: _Run) -> dict[str, float] | None:
    pairs = [(e, p) for e, p in run.classification_expected if p.confidence is not None]
    if not pairs:
        return None
    bins: list[list[tuple[float, bool]]] = [[] for _ in range(CALIBRATION_BINS)]
    for e, p in pairs:
        index = min(int(p.confidence * CALIBRATION_BINS), CALIBRATION_BINS - 1)
        bins[index].append((p.confidence, correct(e, p)))
    ece = sum(abs(sum(c for _, c in b) - sum(conf for conf, _ in b)) for b in bins if b) / len(pairs)
    result = {"ece": _r(ece)}
    scored = [(e, p) for e, p in pairs if p.scores]
    if scored:
        result["brier"] = _r(sum(_brier(e, p.scores) for e, p in scored) / len(scored))
    return result


def _brier(example: Example, scores: Mapping[str, float]) -> float:
    best = max(scores.values())
    weights = {label: math.exp(lp - best) for label, lp in scores.items()}
    total = math.fsum(weights.values())
    return math.fsum((w / total - (1.0 if label == example.expected else 0.0)) ** 2
                     for label, w in weights.items())


# Output length is measured on generations only (see its declaration).
@computes("output_tokens")
def _output_tokens(run: _Run) -> dict[str, float] | None:
    values = [p.output_tokens for _, p in run.generation]
    if not values:
        return None
    return {"mean": _mean(values), "p50": _percentile(values, 50), "p95": _percentile(values, 95)}


@computes("output_chars")
def _output_chars(run: _Run) -> dict[str, float] | None:
    if not run.generation:
        return None
    return {"mean": _mean([len(p.output) for _, p in run.generation])}


@computes("refusal_rate")
def _refusal_rate(run: _Run) -> float | None:
    if not run.generation:
        return None
    refused = sum(1 for _, p in run.generation if any(r.search(p.output) for r in run.refusals))
    return _ratio(refused, len(run.generation))


MISSING = "(missing)"


def slice_value(example: Example, field: str) -> str:
    """The slice an example falls in for ``field``: its value as text, ``(missing)`` without one."""
    fields = example.fields or {}
    if field not in fields:
        return MISSING
    value = fields[field]
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _rates(run: _Run, pairs: Sequence[Pair]) -> dict[str, dict[str, float]]:
    """Per label: recall and false-positive rate over the classifications with `expected` of ``pairs``."""
    scored = [(e, p) for e, p in pairs if e.is_classification and e.expected is not None]
    if not scored:
        return {}
    out = {}
    for label in run.labels:
        tp = sum(1 for e, p in scored if answer(p) == label and e.expected == label)
        fp = sum(1 for e, p in scored if answer(p) == label and e.expected != label)
        fn = sum(1 for e, p in scored if answer(p) != label and e.expected == label)
        tn = len(scored) - tp - fp - fn
        out[label] = {"recall": _ratio(tp, tp + fn), "fpr": _ratio(fp, fp + tn)}
    return out


def _by_slice(run: _Run, field: str) -> dict[str, list[Pair]]:
    groups: dict[str, list[Pair]] = {}
    for pair in run.pairs:
        groups.setdefault(slice_value(pair[0], field), []).append(pair)
    return dict(sorted(groups.items()))


@computes("slices")
def _slices(run: _Run) -> dict | None:
    if not run.slices:
        return None
    result = {}
    for field in run.slices:
        result[field] = {}
        for value, pairs in _by_slice(run, field).items():
            entry: dict[str, Any] = {"n": len(pairs)}
            if len(pairs) >= run.min_slice:
                verdicts = [c for c in (correct(e, p) for e, p in pairs) if c is not None]
                if verdicts:
                    entry["accuracy"] = _ratio(sum(verdicts), len(verdicts))
                rates = _rates(run, pairs)
                if rates:
                    entry["labels"] = rates
            result[field][value] = entry
    return result


@computes("bias")
def _bias(run: _Run) -> dict | None:
    result = {}
    for field in run.slices:
        big = [pairs for pairs in _by_slice(run, field).values() if len(pairs) >= run.min_slice]
        if len(big) < 2:
            continue
        gaps: dict[str, Any] = {}
        accuracies = []
        for pairs in big:
            verdicts = [c for c in (correct(e, p) for e, p in pairs) if c is not None]
            if verdicts:
                accuracies.append(sum(verdicts) / len(verdicts))
        if len(accuracies) >= 2:
            gaps["accuracy_gap"] = _r(max(accuracies) - min(accuracies))
        rates = [_rates(run, pairs) for pairs in big]
        rates = [r for r in rates if r]
        if len(rates) >= 2:
            for label in run.labels:
                fprs = [r[label]["fpr"] for r in rates]
                gaps[label] = {"fpr_gap": _r(max(fprs) - min(fprs))}
        if gaps:
            result[field] = gaps
    return result or None


@computes("latency_ms")
def _latency(run: _Run) -> dict[str, float] | None:
    if not run.pairs:
        return None
    values = [p.latency_ms for _, p in run.pairs]
    return {"p50": _percentile(values, 50), "p95": _percentile(values, 95)}


@computes("tokens_per_second")
def _tokens_per_second(run: _Run) -> float | None:
    tokens = sum(p.output_tokens for _, p in run.generation)
    if all(p.cpu_ms is not None for _, p in run.generation):
        seconds = sum(p.cpu_ms for _, p in run.generation) / 1000.0
    else:
        seconds = sum(p.latency_ms for _, p in run.generation) / 1000.0
    if tokens <= 0 or seconds <= 0:
        return None
    return _r(tokens / seconds)


def compute(examples: Sequence[Example], predictions: Sequence[Prediction],
            refusal_patterns: Sequence[str] = DEFAULT_REFUSAL_PATTERNS, *, slices: Sequence[str] = (),
            min_slice: int = 20) -> dict[str, Any]:
    """The ``metrics`` dict of one run: nested dicts of plain ints and floats.

    ``predictions[i]`` is the prediction for ``examples[i]``. Metrics that do
    not apply are left out. ``refusal_patterns`` replaces the defaults: pass
    ``(*DEFAULT_REFUSAL_PATTERNS, *extra)`` to add to them. Raises ValueError
    when the lengths differ and InvalidParams for a pattern that is not a valid regex. ``slices``
    names the example fields to slice by; slices under ``min_slice`` examples report their n only.
    """
    run = _Run(examples, predictions, refusal_patterns, slices, min_slice)
    result: dict[str, Any] = {}
    for key, compute_one in _COMPUTERS.items():
        value = compute_one(run)
        if value is not None:
            result[key] = value
    return result
