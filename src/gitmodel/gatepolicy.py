"""The gate policy: params.yaml ``gate:`` (tolerances, accepted tradeoffs, defaults) parsed and checked
once into one typed :class:`GatePolicy`, pure. :mod:`gaterules` applies it; :func:`params.gate_policy`
reads it from the workspace.
"""
from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from gitmodel import known
from gitmodel.errors import InvalidParams
from gitmodel.metricdiff import declared, is_number

# The alert band of PSI (drift.PSI_SIGNIFICANT): a larger shift of the outputs'
# distribution fails the gate unless a tradeoff accepts it.
PSI_ALERT = 0.2
OUTPUT_PSI = "output_psi"    # gate rows output_psi.label, output_psi.confidence, output_psi.output_tokens
REVIEW = "review"            # gate rows review.<criterion>: the human review's mean of each rubric criterion
REVIEW_TOLERANCE = 0.25      # how far a criterion's mean may drop (on the rubric's scale) and still pass
REVIEW_MIN_N = 20            # fewer reviews than this on either side: reported, not judged


@dataclass(frozen=True)
class Tolerance:
    """How much worse than the baseline a metric may get and still pass: ``absolute + relative * |baseline|``."""

    absolute: float = 0.0
    relative: float = 0.0

    def allowed(self, baseline: float) -> float:
        return self.absolute + self.relative * abs(baseline)


@dataclass
class Tradeoff:
    """An accepted tradeoff of params.yaml ``gate.accept``."""

    metric: str                     # a metric key or glob pattern
    max_regression: float           # in the metric's own units
    rationale: str
    applied_to: list[str] = field(default_factory=list)   # metrics it let through
    exceeded: list[str] = field(default_factory=list)     # metrics it covers that regressed further

    def to_dict(self) -> dict:
        return {"metric": self.metric, "max_regression": self.max_regression, "rationale": self.rationale,
                "applied_to": self.applied_to, "exceeded": self.exceeded}


def non_negative(value: Any) -> bool:
    """A finite number >= 0: what every tolerance and threshold of the policy must be."""
    return is_number(value) and math.isfinite(value) and value >= 0


TOLERANCE_FORM = "a number >= 0 or {absolute: a, relative: r}"
TOLERANCE_KEYS = ("absolute", "relative")


def parse_tolerances(mapping: Mapping | None, where: str = "params.yaml: gate.tolerance") -> dict[str, Any]:
    """``{key or pattern: number | Tolerance}`` from params.yaml ``gate.tolerance``.

    Keys may be dotted (``latency_ms.p95``), glob patterns (``labels.*.fpr``) or
    nested mappings (``latency_ms: {p95: 0.3}``). A plain number keeps its
    meaning by metric kind (resolved in :func:`gate`); ``{absolute, relative}``
    is explicit: a mapping holding either key is a tolerance, and any other key
    in it is an error (``relativ`` is refused, never read as a metric). Raises
    InvalidParams naming the key and the closest valid one.
    """
    out: dict[str, Any] = {}
    if mapping is None:
        return out
    if not isinstance(mapping, Mapping):
        raise InvalidParams(f"{where} must be a mapping of metric (or pattern) to tolerance, got {mapping!r}")

    def visit(node: Mapping, prefix: str) -> None:
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, Tolerance):
                out[dotted] = value
            elif isinstance(value, Mapping) and value and set(value) & set(TOLERANCE_KEYS):
                for part in value:
                    if part not in TOLERANCE_KEYS:
                        raise InvalidParams(f"{where}.{dotted}: unknown key {part!r} "
                                            f"(a tolerance has absolute, relative{known.suggestion(part, TOLERANCE_KEYS, n=1)})",
                                            hint=f"e.g. {dotted}: {{absolute: 0.01, relative: 0.1}}")
                    if not non_negative(value[part]):
                        raise InvalidParams(f"{where}.{dotted}.{part} must be a number >= 0, got {value[part]!r}")
                out[dotted] = Tolerance(float(value.get("absolute", 0)), float(value.get("relative", 0)))
            elif isinstance(value, Mapping) and value:
                visit(value, dotted + ".")
            elif non_negative(value):
                out[dotted] = float(value)
            else:
                raise InvalidParams(f"{where}.{dotted} must be {TOLERANCE_FORM}, got {value!r}",
                                    hint="e.g. accuracy: 0.01, latency_ms.p95: 0.3, \"labels.*.fpr\": 0.005")

    visit(mapping, "")
    return out


ACCEPT_KEYS = ("metric", "max_regression", "rationale")


def parse_tradeoffs(entries: Any, where: str = "params.yaml: gate.accept") -> list[Tradeoff]:
    """The accepted tradeoffs of params.yaml ``gate.accept``, checked.

    Each entry is ``{metric, max_regression, rationale}``; the rationale is
    required and must say something: an accepted regression is reviewed like
    code. Raises InvalidParams naming the entry.
    """
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise InvalidParams(f"{where} must be a list of {{metric, max_regression, rationale}}, got {entries!r}")
    tradeoffs = []
    for i, entry in enumerate(entries):
        if isinstance(entry, Tradeoff):   # already checked: a fresh copy, so reports do not share lists
            tradeoffs.append(Tradeoff(entry.metric, entry.max_regression, entry.rationale))
            continue
        if not isinstance(entry, Mapping):
            raise InvalidParams(f"{where}[{i}] must be a mapping with metric, max_regression and rationale, "
                                f"got {entry!r}")
        metric = entry.get("metric")
        if not isinstance(metric, str) or not metric.strip():
            raise InvalidParams(f"{where}[{i}]: metric is required (a metric key or pattern, e.g. accuracy)")
        named = f"{where}[{i}] ({metric})"
        unknown = [k for k in entry if k not in ACCEPT_KEYS]
        if unknown:
            raise InvalidParams(f"{named}: unknown key {unknown[0]!r} (an entry has metric, max_regression, "
                                f"rationale{known.suggestion(unknown[0], ACCEPT_KEYS, n=1)})")
        if not non_negative(entry.get("max_regression")):
            raise InvalidParams(f"{named}: max_regression must be a number >= 0 (how much worse than the baseline, "
                                f"in the metric's units), got {entry.get('max_regression')!r}")
        rationale = entry.get("rationale")
        if not isinstance(rationale, str) or not rationale.strip():
            raise InvalidParams(f"{named}: rationale is required and must not be empty",
                                hint="say why this regression is acceptable: the rationale is versioned in git, "
                                     "reviewed like code and printed in every gate report")
        tradeoffs.append(Tradeoff(metric.strip(), float(entry["max_regression"]), rationale.strip()))
    return tradeoffs


@dataclass
class GatePolicy:
    """params.yaml ``gate:``, parsed and checked once: what every gate (and diff's verdict) applies."""

    tolerances: dict[str, Any] = field(default_factory=dict)   # parse_tolerances: key or pattern -> tolerance
    tradeoffs: list[Tradeoff] = field(default_factory=list)
    quality_tolerance: float = 0.0    # absolute, for quality metrics without a tolerance of their own
    timing_tolerance: float = 0.5     # relative, for timing metrics without one
    psi_alert: float = PSI_ALERT      # the output PSI at or above which the gate fails
    review_tolerance: float = REVIEW_TOLERANCE   # review.<criterion>: the drop of a mean that passes
    review_min_n: int = REVIEW_MIN_N             # reviews needed on both sides to judge the review
    require_review: bool = False                 # a candidate whose outputs nobody reviewed fails
    builtin: frozenset[str] = frozenset()   # keys of the built-in tolerances: no result need match them
    where: str = "params.yaml: gate"

    SETTINGS = ("quality_tolerance", "timing_tolerance", "psi_alert", "review_tolerance", "review_min_n",
                "require_review", "tolerance", "accept")

    @classmethod
    def parse(cls, section: Mapping | None, builtin_tolerances: Mapping | None = None,
              where: str = "params.yaml: gate") -> "GatePolicy":
        """The policy of a ``gate:`` mapping. Raises InvalidParams naming an unknown setting, a bad value
        or a key of a tolerance, with the closest valid one."""
        section = {} if section is None else section
        if not isinstance(section, Mapping):
            raise InvalidParams(f"{where} must be a mapping (settings: {', '.join(cls.SETTINGS)})")
        for key in section:
            if key not in cls.SETTINGS:
                raise InvalidParams(f"{where}.{key} is not a gate setting{known.suggestion(key, cls.SETTINGS, n=1)} "
                                    f"(known: {', '.join(cls.SETTINGS)})")
        numbers = {}
        for key, default in (("quality_tolerance", 0.0), ("timing_tolerance", 0.5), ("psi_alert", PSI_ALERT),
                             ("review_tolerance", REVIEW_TOLERANCE)):
            value = section.get(key, default)
            if not non_negative(value):
                raise InvalidParams(f"{where}.{key} must be a number >= 0, got {value!r}",
                                    hint=f"fix gate.{key} in params.yaml (default: {default!r})")
            numbers[key] = float(value)
        min_n = section.get("review_min_n", REVIEW_MIN_N)
        if not (isinstance(min_n, int) and not isinstance(min_n, bool) and min_n >= 1):
            raise InvalidParams(f"{where}.review_min_n must be a whole number >= 1, got {min_n!r}",
                                hint=f"fix gate.review_min_n in params.yaml (default: {REVIEW_MIN_N})")
        require = section.get("require_review", False)
        if not isinstance(require, bool):
            raise InvalidParams(f"{where}.require_review must be true or false, got {require!r}",
                                hint="fix gate.require_review in params.yaml (default: false)")
        builtin = parse_tolerances(builtin_tolerances, f"{where}.tolerance")
        user = parse_tolerances(section.get("tolerance"), f"{where}.tolerance")
        return cls({**builtin, **user}, parse_tradeoffs(section.get("accept"), f"{where}.accept"), **numbers,
                   review_min_n=min_n, require_review=require, builtin=frozenset(builtin), where=where)

    def fresh_tradeoffs(self) -> list[Tradeoff]:
        """Copies of the tradeoffs, so that each report records what it let through alone."""
        return parse_tradeoffs(self.tradeoffs)

    def check_names(self, keys) -> None:
        """Every tolerance and tradeoff the user wrote must name a metric of ``keys`` (the gated results'
        keys, output_psi rows included), or a glob pattern or declared pattern matching one. Raises
        InvalidParams naming the key and the closest existing one: a misspelt key would otherwise be
        silently ignored."""
        keys = list(dict.fromkeys(keys))
        patterns = {k: (declared(k).pattern if declared(k) else None) for k in keys}

        def exists(name: str) -> bool:
            return any(matches(name, k, patterns[k]) for k in keys)

        for name in self.tolerances:
            if name not in self.builtin and not exists(name):
                raise InvalidParams(f"{self.where}.tolerance.{name}: no metric of the results is {name!r}"
                                    f"{known.suggestion(name, keys, n=1)}",
                                    hint="name a metric key (`git model show MODEL` lists them) or a glob "
                                         "pattern matching some, e.g. \"labels.*.fpr\"")
        for i, tradeoff in enumerate(self.tradeoffs):
            if not exists(tradeoff.metric):
                raise InvalidParams(f"{self.where}.accept[{i}]: metric {tradeoff.metric!r} is not a metric of the "
                                    f"results{known.suggestion(tradeoff.metric, keys, n=1)}",
                                    hint="name a metric key (`git model show MODEL` lists them) or a glob "
                                         "pattern matching some")


def matches(pattern: str, key: str, declared: str | None) -> bool:
    # a key, a glob over keys, or the metric's declared pattern (labels.<label>.fpr)
    return pattern == key or pattern == declared or fnmatch.fnmatchcase(key, pattern)
