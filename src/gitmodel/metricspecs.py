"""What each metric means: declared once with its direction, kind, default tolerance and headline flag.

Diff, gate, verify, plot, ``log``, ``eval`` and ``release`` read a metric's meaning
through :func:`spec` and :func:`headline_keys`, never from a list of their own;
:mod:`gitmodel.metrics` computes the values. A pattern names the dotted key(s) one
declaration covers: ``<label>`` or ``<category>`` stand for one key taken from the
data (``labels.<label>.fpr`` covers ``labels.fraud.fpr``). A unit test checks that
every key :func:`gitmodel.metrics.compute` can produce has a spec.

Imports nothing beyond the standard library: ``git model log`` reads the headline
keys without paying for numpy or jsonschema.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any, Iterator, Mapping


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
    # Position among the metrics a run is summed up by (`log`, `eval`, `release`),
    # or None when it is not one of them.
    headline: int | None = None


# pattern -> spec (name == pattern), in declaration order
_SPECS: dict[str, MetricSpec] = {}
_PLACEHOLDER = re.compile(r"^<[a-z_]+>$")


def declare(pattern: str, direction: Direction, description: str, kind: Kind = QUALITY,
            tolerance: tuple[float, float] | None = None, headline: int | None = None) -> None:
    """Declare the metric key(s) ``pattern``; a pattern declared twice raises ValueError."""
    top = pattern.split(".")[0]
    if _PLACEHOLDER.match(top) or not top:
        raise ValueError(f"metric pattern {pattern!r} must start with a fixed name")
    if pattern in _SPECS:
        raise ValueError(f"metric {pattern!r} is declared twice")
    if headline is not None and any(_PLACEHOLDER.match(part) for part in pattern.split(".")):
        raise ValueError(f"headline metric {pattern!r} must be one fixed key")
    _SPECS[pattern] = MetricSpec(pattern, Direction(direction), Kind(kind), description, pattern, tolerance,
                                 headline)


def _pattern_regex(pattern: str) -> re.Pattern:
    # A placeholder matches one or more dotted segments: a label such as
    # "v1.2" must not make its keys unknown. The fixed first and last segments
    # keep the match unambiguous.
    parts = ["(.+)" if _PLACEHOLDER.match(p) else re.escape(p) for p in pattern.split(".")]
    return re.compile(r"\.".join(parts))


@lru_cache(maxsize=4096)
def spec(dotted_key: str) -> MetricSpec:
    """The spec of a leaf key that :func:`gitmodel.metrics.compute` can produce, e.g. ``labels.fraud.fpr``.

    Raises KeyError for a key no metric declares (including non-leaf keys such as ``labels``).
    """
    for pattern, declared_spec in _SPECS.items():
        if _pattern_regex(pattern).fullmatch(dotted_key):
            return MetricSpec(dotted_key, declared_spec.direction, declared_spec.kind, declared_spec.description,
                              pattern, declared_spec.tolerance, declared_spec.headline)
    raise KeyError(dotted_key)


def declared() -> list[MetricSpec]:
    """Every declared metric pattern, in declaration order (the key order of the metrics files)."""
    return list(_SPECS.values())


def headline_keys() -> tuple[str, ...]:
    """The keys a run is summed up by, in their headline order: ``("n", "accuracy", ...)``."""
    flagged = [s for s in _SPECS.values() if s.headline is not None]
    return tuple(s.name for s in sorted(flagged, key=lambda s: s.headline))


def iter_leaves(metrics: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every non-dict leaf, depth first, in dict order."""
    for key, value in metrics.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from iter_leaves(value, dotted + ".")
        else:
            yield dotted, value


# --------------------------------------------------------------------------- the declarations
# In the key order of the metrics files (gitmodel.metrics computes them in the same order).

declare("n", INFO, "number of examples evaluated", headline=1)
declare("accuracy", HIGHER,
        "share of examples with `expected` whose answer equals it: the predicted label for a "
        "classification (a tie between the best labels is no answer, so never correct), the output "
        "(whitespace-stripped) for a generation", headline=2)
declare("accuracy_by_category.<category>", HIGHER,
        "accuracy over the examples of one category (examples with `expected` and a `category`)")

_ZERO = "; 0/0 is reported as 0.0"
declare("labels.<label>.precision", HIGHER,
        "of the classifications answered with this label, the share whose expected label it is: "
        "TP / (TP + FP)" + _ZERO)
declare("labels.<label>.recall", HIGHER,
        "of the classifications expecting this label, the share answered with it: TP / (TP + FN)" + _ZERO)
declare("labels.<label>.fpr", LOWER,
        "false-positive rate: of the classifications not expecting this label, the share answered "
        "with it: FP / (FP + TN)" + _ZERO)
declare("labels.<label>.support", INFO, "number of classifications expecting this label")

declare("label_distribution.<label>", INFO,
        "share of classification examples answered with this label (ties answer none: the shares "
        "add up to 1 - ties / classifications)")
declare("expected_distribution.<label>", INFO,
        "share of classification examples with `expected` that expect this label")
declare("label_psi", LOWER,
        "population stability index of the answered labels against the expected labels, over "
        "classification examples with `expected` (ties answer no label), with additive smoothing of "
        "0.5 per label (0: same distribution; 0.1 moderate; 0.2 significant shift); left out as "
        "insufficient data with fewer than 5 examples per label")
declare("ties", LOWER,
        "number of classifications whose best labels scored equal: no answer, counted wrong by accuracy")

# Confidence says how sure the model is, not whether it is right: a better
# checkpoint may well be less sure. It is monitored (diffed, never gated);
# calibration below is what the gate holds.
declare("confidence.mean", INFO, "mean softmax probability of the chosen label, over classifications")
declare("confidence.p10", INFO, "10th percentile (numpy linear) of the chosen label's probability")
declare("confidence.p50", INFO, "median (numpy linear) of the chosen label's probability")

CALIBRATION_BINS = 10
declare("calibration.ece", LOWER,
        "expected calibration error over classifications with `expected` and a confidence: the "
        f"confidences cut into {CALIBRATION_BINS} equal-width bins over [0, 1], the mean over bins, weighted "
        "by their share of examples, of |accuracy in the bin - mean confidence in the bin| (0: as often "
        "right as it is sure); gated with an absolute slack of 0.02 by default",
        tolerance=(0.02, 0.0))
declare("calibration.brier", INFO,
        "multi-class Brier score over classifications with `expected` and label scores: the mean over "
        "examples of the sum over labels of (softmax probability - 1 if expected else 0)^2 "
        "(0 best, 2 worst)")

# Output length is measured on generations only: a classification's "output" is
# its label, whose token count moves with the answer and would make a better
# classifier look unstable.
# Stable, not lower or higher: a summariser whose answers shrink from 340 to
# 210 words regressed. A relative slack of 10 % by default, not 0: a better
# checkpoint that answers a few more examples in full must not fail on length.
LENGTH_TOLERANCE = (0.0, 0.1)
declare("output_tokens.mean", STABLE, "mean number of tokens generated, over generation examples; "
        "gated within ±10 % of the baseline by default", tolerance=LENGTH_TOLERANCE, headline=4)
declare("output_tokens.p50", STABLE, "median (numpy linear) of tokens generated, over generation examples; "
        "gated within ±10 % of the baseline by default", tolerance=LENGTH_TOLERANCE)
declare("output_tokens.p95", STABLE,
        "95th percentile (numpy linear) of tokens generated, over generation examples; "
        "gated within ±10 % of the baseline by default", tolerance=LENGTH_TOLERANCE)
declare("output_chars.mean", STABLE, "mean number of characters generated, over generation examples; "
        "gated within ±10 % of the baseline by default", tolerance=LENGTH_TOLERANCE)

declare("refusal_rate", LOWER,
        "share of generation outputs matching a refusal pattern (params.yaml eval.refusal_patterns, "
        "case-insensitive, searched anywhere in the output)", headline=3)

# Slices: accuracy and per-label rates for each value of each field named in eval.slices. A slice
# smaller than eval.min_slice reports only its n: one example's flip must not fail a gate.
declare("slices.<field>.<value>.n", INFO, "number of examples whose field has this value (`(missing)`: "
        "examples without the field)")
declare("slices.<field>.<value>.accuracy", HIGHER,
        "accuracy over the examples of one slice (examples with `expected`); absent when the slice has fewer "
        "than eval.min_slice examples")
declare("slices.<field>.<value>.labels.<label>.recall", HIGHER,
        "recall of one label within one slice (classifications with `expected`); absent for a small slice")
declare("slices.<field>.<value>.labels.<label>.fpr", LOWER,
        "false-positive rate of one label within one slice (classifications with `expected`); absent for a "
        "small slice")
declare("bias.<field>.accuracy_gap", LOWER,
        "the largest difference in accuracy between two values of the field, over slices of at least "
        "eval.min_slice examples; absent with fewer than two such slices")
declare("bias.<field>.<label>.fpr_gap", LOWER,
        "the largest difference in a label's false-positive rate between two values of the field, over "
        "slices of at least eval.min_slice examples: one group wrongly flagged more often than another")

declare("latency_ms.p50", LOWER, "median (numpy linear) wall time per example, ms", TIMING)
declare("latency_ms.p95", LOWER, "95th percentile (numpy linear) wall time per example, ms", TIMING)
declare("tokens_per_second", HIGHER,
        "generated tokens per second of generation time, over generation examples (total output tokens / "
        "total time). The time is the CPU time the runner spent generating when it computes in-process "
        "(llama): a busy machine stretches wall time, not the work a checkpoint needs, so a checkpoint gated "
        "against itself passes idle or busy; wall time for a remote or code runner (openai, python). Left "
        "out when the runner counts no tokens",
        TIMING)
