"""Metrics of one eval run, each declared once with its direction, and their schema.

A metric is declared with :func:`metric` on the function that computes it::

    @metric("accuracy", HIGHER, "share of examples with `expected` whose answer equals it")
    def _accuracy(run): ...

The pattern names the dotted key(s) the function produces; ``<label>`` or
``<category>`` stand for one key taken from the data. A function producing a
nested value carries one declaration per leaf pattern (``labels.<label>.fpr``...).
Diff and gate read direction and kind through :func:`spec`, never from a second
list; a unit test checks that every key :func:`compute` can produce has a spec.

Conventions: every float is rounded to 6 decimal places (stable, readable
files); percentiles use numpy's default (linear interpolation); a metric that
does not apply (no classification examples, no generation examples...) is left
out rather than written as null.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum
from functools import cached_property, lru_cache
from typing import Any, Callable, Iterator, Mapping, Sequence

from gitmodel.errors import InvalidMetrics, InvalidParams
from gitmodel.runners.base import Example, Prediction

SCHEMA_VERSION = 1
DECIMALS = 6


class Direction(str, Enum):
    """Which way a metric should move; the gate compares by it."""

    HIGHER = "higher"   # higher is better
    LOWER = "lower"     # lower is better
    STABLE = "stable"   # any change beyond tolerance, up or down, is a regression
    INFO = "info"       # reported and diffed, never gated

    def __str__(self) -> str:  # f-strings render "higher", on every Python version
        return self.value


class Kind(str, Enum):
    """How a metric behaves between two runs of the same inputs."""

    QUALITY = "quality"  # deterministic: the gate's default tolerance is 0
    TIMING = "timing"    # noisy (machine load): the gate uses a relative tolerance

    def __str__(self) -> str:
        return self.value


HIGHER, LOWER, STABLE, INFO = Direction.HIGHER, Direction.LOWER, Direction.STABLE, Direction.INFO
QUALITY, TIMING = Kind.QUALITY, Kind.TIMING


@dataclass(frozen=True)
class MetricSpec:
    """What one metric key means. ``name`` is the dotted key asked for; ``pattern``
    is its declaration, e.g. ``labels.<label>.fpr`` for ``labels.fraud.fpr``."""

    name: str
    direction: Direction
    kind: Kind
    description: str
    pattern: str = ""
    # The gate's default for this metric when params.yaml names none:
    # (absolute, relative), allowed = absolute + relative * |baseline|.
    # None: the gate's default for the kind (quality_tolerance / timing_tolerance).
    tolerance: tuple[float, float] | None = None


# pattern -> spec (name == pattern), in declaration order
_SPECS: dict[str, MetricSpec] = {}
# top-level key -> the function computing its value, or None when it does not apply
_COMPUTERS: dict[str, Callable[["_Run"], Any]] = {}
_PLACEHOLDER = re.compile(r"^<[a-z_]+>$")


def metric(pattern: str, direction: Direction, description: str, kind: Kind = QUALITY,
           tolerance: tuple[float, float] | None = None):
    """Declare the metric key(s) ``pattern`` computed by the decorated function.

    The function takes the run and returns the value of the pattern's top-level
    key (a number, or a nested dict for dotted patterns), or None when the
    metric does not apply. Stack several declarations for a nested value.
    """
    top = pattern.split(".")[0]
    if _PLACEHOLDER.match(top) or not top:
        raise ValueError(f"metric pattern {pattern!r} must start with a fixed name")
    if pattern in _SPECS:
        raise ValueError(f"metric {pattern!r} is declared twice")
    # Registered here rather than in register(): stacked decorators are applied
    # bottom-up but called top-down, and declared() should read like the source.
    _SPECS[pattern] = MetricSpec(pattern, Direction(direction), Kind(kind), description, pattern, tolerance)

    def register(fn: Callable[["_Run"], Any]) -> Callable[["_Run"], Any]:
        owner = _COMPUTERS.setdefault(top, fn)
        if owner is not fn:
            raise ValueError(f"metric key {top!r} is computed by both {owner.__name__} and {fn.__name__}")
        return fn

    return register


def _pattern_regex(pattern: str) -> re.Pattern:
    # A placeholder matches one or more dotted segments: a label such as
    # "v1.2" must not make its keys unknown. The fixed first and last segments
    # keep the match unambiguous.
    parts = ["(.+)" if _PLACEHOLDER.match(p) else re.escape(p) for p in pattern.split(".")]
    return re.compile(r"\.".join(parts))


@lru_cache(maxsize=4096)
def spec(dotted_key: str) -> MetricSpec:
    """The spec of a leaf key that :func:`compute` can produce, e.g. ``labels.fraud.fpr``.

    Raises KeyError for a key no metric declares (including non-leaf keys such as ``labels``).
    """
    for pattern, declared in _SPECS.items():
        if _pattern_regex(pattern).fullmatch(dotted_key):
            return MetricSpec(dotted_key, declared.direction, declared.kind, declared.description, pattern,
                              declared.tolerance)
    raise KeyError(dotted_key)


def declared() -> list[MetricSpec]:
    """Every declared metric pattern, in declaration order (for documentation)."""
    return list(_SPECS.values())


def iter_leaves(metrics: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every non-dict leaf, depth first, in dict order."""
    for key, value in metrics.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from iter_leaves(value, dotted + ".")
        else:
            yield dotted, value


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
                 refusal_patterns: Sequence[str]):
        if len(examples) != len(predictions):
            raise ValueError(f"{len(examples)} examples but {len(predictions)} predictions")
        self.pairs: list[Pair] = list(zip(examples, predictions))
        self.refusals = compile_refusal_patterns(refusal_patterns)

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
    A tie is never correct (see :func:`answer`).
    """
    if example.expected is None:
        return None
    if example.is_classification:
        return answer(prediction) == example.expected
    return prediction.output.strip() == example.expected.strip()


# --------------------------------------------------------------------------- the metrics
# Declaration order is the key order of compute()'s result, hence of the files.


@metric("n", INFO, "number of examples evaluated")
def _n(run: _Run) -> int:
    return len(run.pairs)


@metric("accuracy", HIGHER,
        "share of examples with `expected` whose answer equals it: the predicted label for a "
        "classification (a tie between the best labels is no answer, so never correct), the output "
        "(whitespace-stripped) for a generation")
def _accuracy(run: _Run) -> float | None:
    verdicts = [c for c in (correct(e, p) for e, p in run.pairs) if c is not None]
    return _ratio(sum(verdicts), len(verdicts)) if verdicts else None


@metric("accuracy_by_category.<category>", HIGHER,
        "accuracy over the examples of one category (examples with `expected` and a `category`)")
def _accuracy_by_category(run: _Run) -> dict[str, float] | None:
    verdicts: dict[str, list[bool]] = {}
    for e, p in run.pairs:
        if e.category is not None and e.expected is not None:
            verdicts.setdefault(e.category, []).append(bool(correct(e, p)))
    return {c: _ratio(sum(v), len(v)) for c, v in sorted(verdicts.items())} or None


_ZERO = "; 0/0 is reported as 0.0"


@metric("labels.<label>.precision", HIGHER,
        "of the classifications answered with this label, the share whose expected label it is: "
        "TP / (TP + FP)" + _ZERO)
@metric("labels.<label>.recall", HIGHER,
        "of the classifications expecting this label, the share answered with it: TP / (TP + FN)" + _ZERO)
@metric("labels.<label>.fpr", LOWER,
        "false-positive rate: of the classifications not expecting this label, the share answered "
        "with it: FP / (FP + TN)" + _ZERO)
@metric("labels.<label>.support", INFO, "number of classifications expecting this label")
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


@metric("label_distribution.<label>", INFO,
        "share of classification examples answered with this label (ties answer none: the shares "
        "add up to 1 - ties / classifications)")
def _label_distribution(run: _Run) -> dict[str, float] | None:
    if not run.classification:
        return None
    counts = run.label_counts(run.classification, lambda pair: answer(pair[1]))
    return {k: _ratio(v, len(run.classification)) for k, v in counts.items()}


@metric("expected_distribution.<label>", INFO,
        "share of classification examples with `expected` that expect this label")
def _expected_distribution(run: _Run) -> dict[str, float] | None:
    if not run.classification_expected:
        return None
    return _shares(run.label_counts(run.classification_expected, lambda pair: pair[0].expected))


@metric("label_psi", LOWER,
        "population stability index of the answered labels against the expected labels, over "
        "classification examples with `expected` (ties answer no label), with additive smoothing of "
        "0.5 per label (0: same distribution; 0.1 moderate; 0.2 significant shift); left out as "
        "insufficient data with fewer than 5 examples per label")
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


@metric("ties", LOWER,
        "number of classifications whose best labels scored equal: no answer, counted wrong by accuracy")
def _ties(run: _Run) -> int | None:
    if not run.classification:
        return None
    return sum(1 for _, p in run.classification if p.tie)


# Confidence says how sure the model is, not whether it is right: a better
# checkpoint may well be less sure. It is monitored (diffed, never gated);
# calibration below is what the gate holds.
@metric("confidence.mean", INFO, "mean softmax probability of the chosen label, over classifications")
@metric("confidence.p10", INFO, "10th percentile (numpy linear) of the chosen label's probability")
@metric("confidence.p50", INFO, "median (numpy linear) of the chosen label's probability")
def _confidence(run: _Run) -> dict[str, float] | None:
    values = [p.confidence for _, p in run.classification if p.confidence is not None]
    if not values:
        return None
    return {"mean": _mean(values), "p10": _percentile(values, 10), "p50": _percentile(values, 50)}


CALIBRATION_BINS = 10


@metric("calibration.ece", LOWER,
        "expected calibration error over classifications with `expected` and a confidence: the "
        f"confidences cut into {CALIBRATION_BINS} equal-width bins over [0, 1], the mean over bins, weighted "
        "by their share of examples, of |accuracy in the bin - mean confidence in the bin| (0: as often "
        "right as it is sure); gated with an absolute slack of 0.02 by default",
        tolerance=(0.02, 0.0))
@metric("calibration.brier", INFO,
        "multi-class Brier score over classifications with `expected` and label scores: the mean over "
        "examples of the sum over labels of (softmax probability - 1 if expected else 0)^2 "
        "(0 best, 2 worst)")
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


# Output length is measured on generations only: a classification's "output" is
# its label, whose token count moves with the answer and would make a better
# classifier look unstable.
# Stable, not lower or higher: a summariser whose answers shrink from 340 to
# 210 words regressed. A relative slack of 10 % by default, not 0: a better
# checkpoint that answers a few more examples in full must not fail on length.
LENGTH_TOLERANCE = (0.0, 0.1)


@metric("output_tokens.mean", STABLE, "mean number of tokens generated, over generation examples; "
        "gated within ±10 % of the baseline by default", tolerance=LENGTH_TOLERANCE)
@metric("output_tokens.p50", STABLE, "median (numpy linear) of tokens generated, over generation examples; "
        "gated within ±10 % of the baseline by default", tolerance=LENGTH_TOLERANCE)
@metric("output_tokens.p95", STABLE,
        "95th percentile (numpy linear) of tokens generated, over generation examples; "
        "gated within ±10 % of the baseline by default", tolerance=LENGTH_TOLERANCE)
def _output_tokens(run: _Run) -> dict[str, float] | None:
    values = [p.output_tokens for _, p in run.generation]
    if not values:
        return None
    return {"mean": _mean(values), "p50": _percentile(values, 50), "p95": _percentile(values, 95)}


@metric("output_chars.mean", STABLE, "mean number of characters generated, over generation examples; "
        "gated within ±10 % of the baseline by default", tolerance=LENGTH_TOLERANCE)
def _output_chars(run: _Run) -> dict[str, float] | None:
    if not run.generation:
        return None
    return {"mean": _mean([len(p.output) for _, p in run.generation])}


@metric("refusal_rate", LOWER,
        "share of generation outputs matching a refusal pattern (params.yaml eval.refusal_patterns, "
        "case-insensitive, searched anywhere in the output)")
def _refusal_rate(run: _Run) -> float | None:
    if not run.generation:
        return None
    refused = sum(1 for _, p in run.generation if any(r.search(p.output) for r in run.refusals))
    return _ratio(refused, len(run.generation))


@metric("latency_ms.p50", LOWER, "median (numpy linear) wall time per example, ms", TIMING)
@metric("latency_ms.p95", LOWER, "95th percentile (numpy linear) wall time per example, ms", TIMING)
def _latency(run: _Run) -> dict[str, float] | None:
    if not run.pairs:
        return None
    values = [p.latency_ms for _, p in run.pairs]
    return {"p50": _percentile(values, 50), "p95": _percentile(values, 95)}


@metric("tokens_per_second", HIGHER,
        "generated tokens per second of generation time, over generation examples (total output tokens / "
        "total time). The time is the CPU time the runner spent generating when it computes in-process "
        "(llama): a busy machine stretches wall time, not the work a checkpoint needs, so a checkpoint gated "
        "against itself passes idle or busy; wall time for a remote or code runner (openai, python). Left "
        "out when the runner counts no tokens",
        TIMING)
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
            refusal_patterns: Sequence[str] = DEFAULT_REFUSAL_PATTERNS) -> dict[str, Any]:
    """The ``metrics`` dict of one run: nested dicts of plain ints and floats.

    ``predictions[i]`` is the prediction for ``examples[i]``. Metrics that do
    not apply are left out. ``refusal_patterns`` replaces the defaults: pass
    ``(*DEFAULT_REFUSAL_PATTERNS, *extra)`` to add to them. Raises ValueError
    when the lengths differ and InvalidParams for a pattern that is not a valid regex.
    """
    run = _Run(examples, predictions, refusal_patterns)
    result: dict[str, Any] = {}
    for key, compute_one in _COMPUTERS.items():
        value = compute_one(run)
        if value is not None:
            result[key] = value
    return result


# --------------------------------------------------------------------------- schema

_HINT = "the file was edited by hand or written by another git-model version; " \
        "re-run `git model eval ... --force` to rewrite it"


def load_schema(name: str) -> dict:
    """The JSON Schema ``schemas/<name>.schema.json`` shipped in the package (cached).

    ``name`` is ``"metrics"``, ``"outputs"`` or ``"evalset"``. Do not mutate the result.
    """
    from gitmodel.schemas import load  # one loader for every schema, cached there

    return load(name.removesuffix(".schema.json"))


@lru_cache(maxsize=None)
def _validator(name: str):
    import jsonschema

    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@lru_cache(maxsize=None)
def _fast_check(name: str):
    from gitmodel.schemacheck import compile_check

    return compile_check(load_schema(name))


def _json_path(parts: Sequence[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(error) -> tuple[str, str]:
    """(JSON path of the bad field, what was expected) for a jsonschema error."""
    path = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, Mapping):
        missing = [k for k in error.validator_value if k not in error.instance]
        if missing:
            return _json_path(path + [missing[0]]), "required but missing"
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        if extra:
            return _json_path(path + [extra[0]]), "unknown field (not in schema_version 1)"
    return _json_path(path), error.message


def _validate(name: str, doc: Any, source: str) -> None:
    from jsonschema.exceptions import best_match

    error = best_match(_validator(name).iter_errors(doc))
    if error is not None:
        path, expected = _message(error)
        where = f"field {path}: " if path else ""
        raise InvalidMetrics(f"{source}: {where}{expected}", hint=_HINT)


def validate_metrics(doc: Any, source: str) -> None:
    """Check a metrics document against metrics.schema.json.

    Raises InvalidMetrics naming ``source``, the JSON path of the first bad field
    and what was expected, e.g. ``metrics/chat/support.json: field
    metrics.accuracy: 'high' is not of type 'number'``. Also refuses NaN and
    infinite numbers, which JSON cannot hold portably.
    """
    _validate("metrics", doc, source)
    for key, value in iter_leaves(doc["metrics"]):
        if not math.isfinite(value):
            raise InvalidMetrics(f"{source}: field metrics.{key}: {value!r} is not a finite number", hint=_HINT)


def validate_output(record: Any, source: str) -> None:
    """Check one outputs.jsonl record against outputs.schema.json.

    ``source`` names where it came from, e.g. ``metrics/chat/support.outputs.jsonl:12``.
    Every line of every eval goes through here: a plain predicate compiled from the schema
    says yes to a good record at a fraction of jsonschema's cost; jsonschema judges the rest.
    """
    check = _fast_check("outputs")
    if check is not None and check(record):
        return
    _validate("outputs", record, source)
    numbers = [("confidence", record["confidence"])]
    numbers += [(f"scores.{label}", v) for label, v in (record["scores"] or {}).items()]
    for field, value in numbers:
        if value is not None and not math.isfinite(value):
            raise InvalidMetrics(f"{source}: field {field}: {value!r} is not a finite number", hint=_HINT)

