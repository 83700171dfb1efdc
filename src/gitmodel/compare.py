"""Diff and gate: pure functions on metrics documents and outputs files.

Nothing here touches git, DVC or the disk, so every rule is tested on plain
dicts (tests/unit/test_compare.py). Directions come from :func:`metrics.spec`,
never from a list of our own.

- :func:`diff_docs` is ``dvc metrics diff --json`` for one file, exactly.
- :func:`comparable` says whether two results were computed on the same inputs.
- :func:`metric_rows` is the human table: better / worse by each metric's direction.
- :func:`behaviour` is the behavioural diff of two ``outputs.jsonl`` files; :func:`output_psi`
  the PSI of their distributions.
- :class:`GatePolicy` is params.yaml ``gate:``, parsed and checked once.
- :func:`gate` compares a candidate with a baseline under that policy, output PSI included.

``metrics`` is imported inside the functions that need a direction, and
``drift`` (numpy) only by :func:`behaviour`: ``git model diff --json`` needs neither.
"""
from __future__ import annotations

import fnmatch
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from gitmodel import jsonio
from gitmodel.errors import InvalidMetrics, InvalidParams

# Floats in metrics files are rounded to 6 decimals; this slack only absorbs
# the last bits of float arithmetic (0.925 - 0.84 = 0.08500000000000008).
EPSILON = 1e-9

BETTER, WORSE, SAME, CHANGED = "better", "worse", "same", "changed"
PASS, FAIL, ACCEPTED, INFO = "pass", "fail", "accepted", "info"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metrics_of(doc: Mapping | None) -> Mapping:
    """The ``metrics`` section of a metrics document, or the mapping itself when it is one already."""
    if doc is None:
        return {}
    if "schema_version" in doc and isinstance(doc.get("metrics"), Mapping):
        return doc["metrics"]
    return doc


def leaves(metrics: Mapping, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every non-mapping leaf, depth first (the one walk lives in metrics)."""
    from gitmodel.metrics import iter_leaves

    return iter_leaves(metrics, prefix)


def merged_keys(first: list[str], second: list[str]) -> list[str]:
    """``first``, with the keys only in ``second`` inserted after the key they follow there."""
    out = list(first)
    present = set(out)
    position = {k: i for i, k in enumerate(out)}
    previous = None
    for key in second:
        if key not in present:
            at = position[previous] + 1 if previous in position else len(out)
            out.insert(at, key)
            present.add(key)
            position = {k: i for i, k in enumerate(out)}
        previous = key
    return out


# ----------------------------------------------------------------------------- dvc metrics diff


def _dvc_extract(value: Any) -> Any:
    # dvc/repo/metrics/show.py `_extract_metrics`: numbers (bools too) and strings
    # stay; None, lists and what becomes empty are dropped.
    if isinstance(value, (int, float, str)):
        return value
    if not isinstance(value, Mapping):
        return None
    out = {}
    for key, item in value.items():
        extracted = _dvc_extract(item)
        if extracted not in (None, {}):
            out[key] = extracted
    return out


def dvc_flatten(doc: Mapping | None) -> dict[str, Any]:
    """A metrics file as ``dvc metrics show`` reads it: dotted keys of its number and string leaves."""
    extracted = _dvc_extract(doc) if doc else {}
    return dict(leaves(extracted)) if isinstance(extracted, Mapping) else {}


def _dvc_diff_values(old: Any, new: Any, all: bool) -> dict:
    # dvc/utils/diff.py `_diff_vals`
    if not all and old == new:
        return {}
    entry = {"old": old, "new": new}
    if isinstance(new, (int, float)) and isinstance(old, (int, float)):
        entry["diff"] = new - old
    return entry


def diff_docs(old: Mapping | None, new: Mapping | None, all: bool = False) -> dict[str, dict]:
    """What ``dvc metrics diff --json`` prints for one metrics file: ``{dotted.key: {"old", "new", "diff"?}}``.

    The whole file is read as DVC reads it (``schema_version``, the model and
    eval set md5s and the params are string or number leaves too); lists and
    nulls are left out; a key missing on one side is ``null`` there; ``diff``
    is ``new - old`` (not rounded) only when both are numbers; unchanged keys
    are left out unless ``all``. ``None`` stands for a file missing at a revision.
    Keys come in the old file's order, new keys after the key they follow.
    """
    old_flat, new_flat = dvc_flatten(old), dvc_flatten(new)
    result = {}
    for key in merged_keys(list(old_flat), list(new_flat)):
        entry = _dvc_diff_values(old_flat.get(key), new_flat.get(key), all)
        if entry:
            result[key] = entry
    return result


# ----------------------------------------------------------------------------- comparability


def comparable(old_doc: Mapping, new_doc: Mapping, names: tuple[str, str] = ("old", "new")) -> tuple[bool, str]:
    """Whether two results were computed on the same eval set (md5) with the same eval params.

    Returns ``(True, "")`` or ``(False, reason)``, the reason naming every
    difference, e.g. ``eval set evalsets/x.jsonl md5 differs (old 11c5..., new 2b3f...);
    eval params differ: n_threads 1 -> 4``. ``names`` are the words for the two sides.
    """
    problems = []
    old_set, new_set = old_doc.get("evalset") or {}, new_doc.get("evalset") or {}
    if old_set.get("md5") != new_set.get("md5"):
        path = new_set.get("path") or old_set.get("path") or "the eval set"
        problems.append(f"eval set {path} md5 differs ({names[0]} {old_set.get('md5')}, "
                        f"{names[1]} {new_set.get('md5')})")
    from gitmodel.params import EVAL_DEFAULTS

    # a key one file does not record was written by an older git-model: it stands for its default
    old_params, new_params = old_doc.get("params") or {}, new_doc.get("params") or {}
    keys = merged_keys(list(old_params), list(new_params))
    old_params = {key: old_params.get(key, EVAL_DEFAULTS.get(key)) for key in keys}
    new_params = {key: new_params.get(key, EVAL_DEFAULTS.get(key)) for key in old_params}
    changed = [f"{key} {json.dumps(old_params[key])} -> {json.dumps(new_params[key])}"
               for key in old_params if old_params[key] != new_params[key]]
    if changed:
        problems.append("eval params differ: " + ", ".join(changed))
    return (not problems, "; ".join(problems))


# ----------------------------------------------------------------------------- the human table


def _spec(key: str):
    from gitmodel import metrics

    try:
        return metrics.spec(key)
    except KeyError:
        return None


@dataclass
class MetricRow:
    """One metric of the diff table."""

    key: str
    old: Any
    new: Any
    change: float | None       # new - old, when both are numbers
    verdict: str               # better | worse | same | changed
    direction: str | None      # higher | lower | stable | info; None for an undeclared key
    kind: str | None           # quality | timing

    def to_dict(self) -> dict:
        return {"metric": self.key, "old": self.old, "new": self.new, "change": self.change,
                "verdict": self.verdict, "direction": self.direction, "kind": self.kind}


def _verdict(direction: str | None, old: Any, new: Any) -> str:
    if not (_is_number(old) and _is_number(new)):
        return SAME if old == new else CHANGED
    if abs(new - old) <= EPSILON:
        return SAME
    if direction == "higher":
        return BETTER if new > old else WORSE
    if direction == "lower":
        return BETTER if new < old else WORSE
    if direction == "stable":
        return WORSE          # any change of a stable metric is a regression
    return CHANGED            # info, or a key no metric declares


def metric_rows(old: Mapping | None, new: Mapping | None, all: bool = True) -> list[MetricRow]:
    """Every metrics leaf of either side with old, new, change and a verdict by its direction.

    ``old`` / ``new`` are metrics documents or their ``metrics`` sections (None
    for a missing result). ``better`` / ``worse`` follow the declared direction
    (a stable metric that moves is ``worse``); ``changed`` is an info metric, an
    undeclared key or a value missing on one side; ``same`` otherwise. With
    ``all=False`` unchanged rows are left out.
    """
    rows = []
    for key, o, n, spec, change, _, _ in _paired_leaves(old, new):
        direction = spec.direction.value if spec else None
        verdict = _verdict(direction, o, n)
        if verdict == SAME and not all:
            continue
        rows.append(MetricRow(key, o, n, change, verdict, direction, spec.kind.value if spec else None))
    return rows


def _paired_leaves(old: Mapping | None, new: Mapping | None):
    """(key, old value, new value, spec or None, change or None, in old, in new) for every metrics
    leaf of either side, in merged key order: the one walk behind the diff table and the gate."""
    old_flat, new_flat = dict(leaves(_metrics_of(old))), dict(leaves(_metrics_of(new)))
    for key in merged_keys(list(old_flat), list(new_flat)):
        o, n = old_flat.get(key), new_flat.get(key)
        change = n - o if _is_number(o) and _is_number(n) else None
        yield key, o, n, _spec(key), change, key in old_flat, key in new_flat


# ----------------------------------------------------------------------------- behaviour


def parse_outputs(data: bytes | None, source: str = "outputs.jsonl") -> dict[str, dict]:
    """id -> record of an outputs.jsonl file (later lines win for a repeated id)."""
    records: dict[str, dict] = {}
    if not data:
        return records
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = jsonio.loads(line)
        except ValueError as e:
            raise InvalidMetrics(f"{source}:{number}: not valid JSON: {e}") from None
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            raise InvalidMetrics(f"{source}:{number}: a line without a string `id`")
        records[record["id"]] = record
    return records


_SHOWN_FIELDS = ("output", "label", "confidence", "correct")

# The distributions of two outputs files compared by PSI (diff's behaviour and
# the gate): the answered labels, the confidences and the output lengths.
PSI_SIGNALS = ("label", "confidence", "output_tokens")


def _answered(record: Mapping) -> Any:
    # a tie answers no label (metrics.answer): the label written first is the eval set's choice
    return None if record.get("tie") else record.get("label")


def _psi_entry(kind: str, old: list, new: list) -> dict | None:
    from gitmodel import drift

    if not old or not new:
        return None
    measured = drift.measure_counts(_count(old), _count(new)) if kind == "categorical" \
        else drift.measure_values(old, new)
    return measured.to_dict()


def _count(values: list) -> dict:
    counts: dict = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts


def output_psi(old: Mapping[str, dict], new: Mapping[str, dict]) -> dict[str, dict | None]:
    """PSI of each of :data:`PSI_SIGNALS` between two parsed outputs files (old = expected side).

    Each entry is :meth:`drift.PSI.to_dict` (``psi`` None and band "insufficient data" with too few
    examples per bin), or None where a side has no value (no confidence in a generation-only set)."""
    def labels(records):
        return [label for label in map(_answered, records.values()) if label is not None]

    return {
        "label": _psi_entry("categorical", labels(old), labels(new)),
        "confidence": _psi_entry("continuous", _numbers(old, "confidence"), _numbers(new, "confidence")),
        "output_tokens": _psi_entry("continuous", _numbers(old, "output_tokens"), _numbers(new, "output_tokens")),
    }


def _changes(o: Mapping, n: Mapping) -> list[str]:
    """Everything that changed for one example, in words: each listed example shows once, with all of it."""
    changes = []
    if o.get("correct") is True and n.get("correct") is False:
        changes.append("correct -> wrong")
    elif o.get("correct") is False and n.get("correct") is True:
        changes.append("wrong -> correct")
    old_label, new_label = _answered(o), _answered(n)
    if o.get("label") is None and n.get("label") is None:
        if o.get("output") != n.get("output"):
            changes.append("generation changed")
    elif old_label != new_label or bool(o.get("tie")) != bool(n.get("tie")):
        def said(record, label):
            return "tie" if record.get("tie") else (label if label is not None else "none")
        changes.append(f"label {said(o, old_label)} -> {said(n, new_label)}")
    return changes


def behaviour(old_outputs: bytes | None, new_outputs: bytes | None,
              old_source: str = "old outputs", new_source: str = "new outputs") -> dict:
    """The behavioural diff of two outputs.jsonl files, examples matched by id.

    Returns::

        {"matched": n,
         "correct_to_wrong": [ids], "wrong_to_correct": [ids],
         "label_changed": [ids],          # the answered label changed (a tie answers none)
         "generation_changed": [ids],     # no label on either side, different output text
         "only_old": [ids], "only_new": [ids],
         "counts": {each list above: its length},
         "changes": {id: ["correct -> wrong", "label positive -> negative", ...]},  # each id once
         "psi": {"output_tokens" | "confidence" | "label": output_psi's entry or None},
         "examples": {id: {"old": {output, label, confidence, correct} | None, "new": ...}}}

    Lists follow the new file's order (old-only ids: the old file's). PSI takes
    the old file as the expected distribution (see :func:`output_psi`).
    """
    old = parse_outputs(old_outputs, old_source)
    new = parse_outputs(new_outputs, new_source)
    lists: dict[str, list[str]] = {name: [] for name in (
        "correct_to_wrong", "wrong_to_correct", "label_changed", "generation_changed", "only_old", "only_new")}
    changes: dict[str, list[str]] = {}
    matched = 0
    for id_, n in new.items():
        o = old.get(id_)
        if o is None:
            lists["only_new"].append(id_)
            continue
        matched += 1
        found = _changes(o, n)
        if found:
            changes[id_] = found
        for change in found:
            key = {"correct -> wrong": "correct_to_wrong", "wrong -> correct": "wrong_to_correct",
                   "generation changed": "generation_changed"}.get(change, "label_changed")
            lists[key].append(id_)
    lists["only_old"] = [id_ for id_ in old if id_ not in new]

    def shown(record: dict | None) -> dict | None:
        return None if record is None else {k: record.get(k) for k in _SHOWN_FIELDS} | {"tie": bool(record.get("tie"))}

    listed = dict.fromkeys(id_ for ids in lists.values() for id_ in ids)
    return {"matched": matched, **lists, "counts": {name: len(ids) for name, ids in lists.items()},
            "changes": changes, "psi": output_psi(old, new),
            "examples": {id_: {"old": shown(old.get(id_)), "new": shown(new.get(id_))} for id_ in listed}}


def _numbers(records: dict[str, dict], key: str) -> list[float]:
    return [float(r[key]) for r in records.values() if _is_number(r.get(key)) and math.isfinite(r[key])]


# ----------------------------------------------------------------------------- the gate


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


@dataclass
class GateRow:
    """One metric of a gate report."""

    metric: str
    baseline: Any
    candidate: Any
    change: float | None            # candidate - baseline
    rule: str                       # e.g. ">= baseline - 0", "<= baseline * 1.5 + 25", "within ±0"
    verdict: str                    # pass | fail | accepted | info
    direction: str | None = None
    kind: str | None = None
    regression: float | None = None  # how much worse than the baseline (> 0), in the metric's units
    allowed: float | None = None     # how much worse the rule lets it be, in the metric's units
    tradeoff: Tradeoff | None = None  # the accepted tradeoff that let it through

    def to_dict(self) -> dict:
        return {"metric": self.metric, "baseline": self.baseline, "candidate": self.candidate,
                "change": self.change, "rule": self.rule, "verdict": self.verdict, "direction": self.direction,
                "kind": self.kind, "regression": self.regression, "allowed": self.allowed,
                "accepted_by": self.tradeoff.metric if self.tradeoff else None}


@dataclass
class GateReport:
    rows: list[GateRow]
    tradeoffs: list[Tradeoff]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[GateRow]:
        return [r for r in self.rows if r.verdict == FAIL]

    @property
    def accepted(self) -> list[GateRow]:
        return [r for r in self.rows if r.verdict == ACCEPTED]

    @property
    def within_tolerance(self) -> list[GateRow]:
        """Passing metrics that are worse than the baseline, by no more than the rule allows (the
        output PSI rows are not metrics of either side: a PSI under the alert band is no regression)."""
        return [r for r in self.rows if r.verdict == PASS and r.regression is not None
                and not r.metric.startswith(OUTPUT_PSI + ".")]

    def summary(self) -> str:
        """One line: ``pass`` / ``fail``, the failing metrics, the accepted ones."""
        gated = sum(1 for r in self.rows if r.verdict != INFO)
        if self.passed:
            text = f"pass: {gated} gated metrics meet or beat the baseline"
        else:
            text = (f"fail: {len(self.failures)} regression{'s' if len(self.failures) != 1 else ''}: "
                    f"{', '.join(r.metric for r in self.failures)}")
        if self.accepted:
            text += "; accepted tradeoffs: " + ", ".join(r.metric for r in self.accepted)
        return text

    def to_dict(self) -> dict:
        return {"passed": self.passed, "rows": [r.to_dict() for r in self.rows],
                "tradeoffs": [t.to_dict() for t in self.tradeoffs]}


def _num(x: Any) -> str:
    if _is_number(x):
        return f"{x:g}" if isinstance(x, float) else str(x)
    return "missing" if x is None else str(x)


def _non_negative(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value) and value >= 0


def _closest(word: str, choices) -> str:
    """``; did you mean 'x'?`` for the nearest of ``choices``, or nothing when none is near."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


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
                                            f"(a tolerance has absolute, relative{_closest(part, TOLERANCE_KEYS)})",
                                            hint=f"e.g. {dotted}: {{absolute: 0.01, relative: 0.1}}")
                    if not _non_negative(value[part]):
                        raise InvalidParams(f"{where}.{dotted}.{part} must be a number >= 0, got {value[part]!r}")
                out[dotted] = Tolerance(float(value.get("absolute", 0)), float(value.get("relative", 0)))
            elif isinstance(value, Mapping) and value:
                visit(value, dotted + ".")
            elif _non_negative(value):
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
                                f"rationale{_closest(unknown[0], ACCEPT_KEYS)})")
        if not _non_negative(entry.get("max_regression")):
            raise InvalidParams(f"{named}: max_regression must be a number >= 0 (how much worse than the baseline, "
                                f"in the metric's units), got {entry.get('max_regression')!r}")
        rationale = entry.get("rationale")
        if not isinstance(rationale, str) or not rationale.strip():
            raise InvalidParams(f"{named}: rationale is required and must not be empty",
                                hint="say why this regression is acceptable: the rationale is versioned in git, "
                                     "reviewed like code and printed in every gate report")
        tradeoffs.append(Tradeoff(metric.strip(), float(entry["max_regression"]), rationale.strip()))
    return tradeoffs


# The alert band of PSI (drift.PSI_SIGNIFICANT): a larger shift of the outputs'
# distribution fails the gate unless a tradeoff accepts it.
PSI_ALERT = 0.2
OUTPUT_PSI = "output_psi"    # gate rows output_psi.label, output_psi.confidence, output_psi.output_tokens


@dataclass
class GatePolicy:
    """params.yaml ``gate:``, parsed and checked once: what every gate (and diff's verdict) applies."""

    tolerances: dict[str, Any] = field(default_factory=dict)   # parse_tolerances: key or pattern -> tolerance
    tradeoffs: list[Tradeoff] = field(default_factory=list)
    quality_tolerance: float = 0.0    # absolute, for quality metrics without a tolerance of their own
    timing_tolerance: float = 0.5     # relative, for timing metrics without one
    psi_alert: float = PSI_ALERT      # the output PSI at or above which the gate fails
    builtin: frozenset[str] = frozenset()   # keys of the built-in tolerances: no result need match them
    where: str = "params.yaml: gate"

    SETTINGS = ("quality_tolerance", "timing_tolerance", "psi_alert", "tolerance", "accept")

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
                raise InvalidParams(f"{where}.{key} is not a gate setting{_closest(key, cls.SETTINGS)} "
                                    f"(known: {', '.join(cls.SETTINGS)})")
        numbers = {}
        for key, default in (("quality_tolerance", 0.0), ("timing_tolerance", 0.5), ("psi_alert", PSI_ALERT)):
            value = section.get(key, default)
            if not _non_negative(value):
                raise InvalidParams(f"{where}.{key} must be a number >= 0, got {value!r}",
                                    hint=f"fix gate.{key} in params.yaml (default: {default!r})")
            numbers[key] = float(value)
        builtin = parse_tolerances(builtin_tolerances, f"{where}.tolerance")
        user = parse_tolerances(section.get("tolerance"), f"{where}.tolerance")
        return cls({**builtin, **user}, parse_tradeoffs(section.get("accept"), f"{where}.accept"), **numbers,
                   builtin=frozenset(builtin), where=where)

    def fresh_tradeoffs(self) -> list[Tradeoff]:
        """Copies of the tradeoffs, so that each report records what it let through alone."""
        return parse_tradeoffs(self.tradeoffs)

    def check_names(self, keys) -> None:
        """Every tolerance and tradeoff the user wrote must name a metric of ``keys`` (the gated results'
        keys, output_psi rows included), or a glob pattern or declared pattern matching one. Raises
        InvalidParams naming the key and the closest existing one: a misspelt key would otherwise be
        silently ignored."""
        keys = list(dict.fromkeys(keys))
        declared = {k: (_spec(k).pattern if _spec(k) else None) for k in keys}

        def known(name: str) -> bool:
            return any(_matches(name, k, declared[k]) for k in keys)

        for name in self.tolerances:
            if name not in self.builtin and not known(name):
                raise InvalidParams(f"{self.where}.tolerance.{name}: no metric of the results is {name!r}"
                                    f"{_closest(name, keys)}",
                                    hint="name a metric key (`git model show MODEL` lists them) or a glob "
                                         "pattern matching some, e.g. \"labels.*.fpr\"")
        for i, tradeoff in enumerate(self.tradeoffs):
            if not known(tradeoff.metric):
                raise InvalidParams(f"{self.where}.accept[{i}]: metric {tradeoff.metric!r} is not a metric of the "
                                    f"results{_closest(tradeoff.metric, keys)}",
                                    hint="name a metric key (`git model show MODEL` lists them) or a glob "
                                         "pattern matching some")


def _matches(pattern: str, key: str, declared: str | None) -> bool:
    # a key, a glob over keys, or the metric's declared pattern (labels.<label>.fpr)
    return pattern == key or pattern == declared or fnmatch.fnmatchcase(key, pattern)


def _tolerance_for(key: str, spec, kind: str, tolerances: Mapping[str, Any],
                   quality_default: float, timing_default: float) -> Tolerance:
    declared = spec.pattern if spec else None
    chosen = tolerances.get(key)
    if chosen is None:
        # the most specific pattern wins: the longest one, then the first written
        patterns = [(len(p), -i, p) for i, p in enumerate(tolerances) if p != key and _matches(p, key, declared)]
        if patterns:
            chosen = tolerances[max(patterns)[2]]
    if chosen is None and spec is not None and spec.tolerance is not None:
        return Tolerance(*spec.tolerance)     # the metric's own documented default
    if chosen is None:
        chosen = timing_default if kind == "timing" else quality_default
    if isinstance(chosen, Tolerance):
        return chosen
    # a plain number: absolute for quality metrics, relative for timings (noisy, and in any unit)
    return Tolerance(relative=chosen) if kind == "timing" else Tolerance(absolute=chosen)


def _rule(direction: str, tol: Tolerance) -> str:
    a = _num(tol.absolute)
    if direction == "stable":
        if tol.relative and tol.absolute:
            return f"within ±({_percent(tol.relative)} + {a})"
        return f"within ±{_percent(tol.relative)}" if tol.relative else f"within ±{a}"
    sign = ">=" if direction == "higher" else "<="
    factor = 1 - tol.relative if direction == "higher" else 1 + tol.relative
    base = f"baseline * {_num(round(factor, 9))}" if tol.relative else "baseline"
    if tol.relative and not tol.absolute:
        return f"{sign} {base}"
    return f"{sign} {base} {'-' if direction == 'higher' else '+'} {a}"


def _percent(fraction: float) -> str:
    return f"{fraction * 100:g} %"


def _timing_conditions(baseline: Mapping, candidate: Mapping) -> str | None:
    """Why the two results' timings are not comparable, or None when they are (or nothing says)."""
    old, new = baseline.get("timing_conditions"), candidate.get("timing_conditions")
    if not isinstance(old, Mapping) or not isinstance(new, Mapping) or old == new:
        return None
    changed = [f"{k} {json.dumps(old.get(k))} -> {json.dumps(new.get(k))}"
               for k in merged_keys(list(old), list(new)) if old.get(k) != new.get(k)]
    return "timings measured under other conditions: " + ", ".join(changed)


def _psi_rows(output_psi: Mapping[str, Any], policy: GatePolicy) -> list[GateRow]:
    rows = []
    for signal in PSI_SIGNALS:
        entry = output_psi.get(signal)
        key = f"{OUTPUT_PSI}.{signal}"
        if entry is None:
            continue
        if entry.get("psi") is None:
            rows.append(GateRow(key, None, None, None, f"not gated: insufficient data ({entry['n_expected']} "
                                f"vs {entry['n_actual']} outputs for {entry['bins']} bins)", INFO, "lower",
                                "distribution"))
            continue
        chosen = policy.tolerances.get(key)
        if chosen is None:
            patterns = [(len(p), -i, p) for i, p in enumerate(policy.tolerances) if _matches(p, key, None)]
            chosen = policy.tolerances[max(patterns)[2]] if patterns else None
        limit = chosen.absolute if isinstance(chosen, Tolerance) else (policy.psi_alert if chosen is None else chosen)
        psi = entry["psi"]
        row = GateRow(key, 0.0, psi, psi, f"PSI < {_num(limit)}",
                      PASS if psi < limit else FAIL, "lower", "distribution",
                      regression=psi if psi > EPSILON else None, allowed=limit)
        rows.append(row)
    return rows


def gate(baseline: Mapping, candidate: Mapping, tolerances: Mapping | None = None,
         accepted: list | None = None, *, quality_tolerance: float = 0.0,
         timing_tolerance: float = 0.5, policy: GatePolicy | None = None,
         output_psi: Mapping[str, Any] | None = None) -> GateReport:
    """Compare every metric of ``candidate`` with ``baseline`` by its declared direction.

    ``baseline`` / ``candidate`` are metrics documents or their ``metrics``
    sections. ``policy`` is params.yaml ``gate:`` parsed (:meth:`GatePolicy.parse`);
    without it, ``tolerances`` (see :func:`parse_tolerances`), ``accepted`` (see
    :func:`parse_tradeoffs`), ``quality_tolerance`` and ``timing_tolerance`` make one.
    ``output_psi`` is :func:`output_psi` of the baseline's and the candidate's
    outputs on this eval set: each signal becomes a row ``output_psi.<signal>``
    that fails at or above the policy's ``psi_alert`` (0.2) unless a tradeoff accepts it.

    Per metric: higher-is-better passes when ``candidate >= baseline - allowed``,
    lower-is-better when ``candidate <= baseline + allowed``, stable when
    ``|candidate - baseline| <= allowed``, with ``allowed = absolute + relative * |baseline|``.
    The tolerance is params.yaml's for the key (the most specific pattern),
    else the metric's own declared default (metrics.MetricSpec.tolerance), else
    ``quality_tolerance`` (absolute) or ``timing_tolerance`` (relative) by kind; a plain
    number is absolute for quality metrics and relative for timing metrics.
    Info metrics, undeclared keys and metrics new in the candidate are listed as
    ``info`` and never fail; so are timing metrics when the documents'
    ``timing_conditions`` differ (not comparable, not gated); a gated metric of
    the baseline missing from the candidate fails. A failing regression no
    larger than an accepted tradeoff's ``max_regression`` (the first entry whose
    metric or pattern matches) is ``accepted`` instead.
    """
    if policy is None:
        policy = GatePolicy(parse_tolerances(tolerances), parse_tradeoffs(accepted),
                            float(quality_tolerance), float(timing_tolerance))
    tradeoffs = policy.fresh_tradeoffs()
    timing_apart = _timing_conditions(baseline, candidate)
    rows = []
    for key, b, c, spec, change, in_base, in_cand in _paired_leaves(baseline, candidate):
        direction = spec.direction.value if spec else None
        kind = spec.kind.value if spec else None
        row = GateRow(key, b, c, change, "", INFO, direction, kind)
        rows.append(row)
        if spec is None:
            row.rule = "not gated: no metric declares this key"
            continue
        if direction == "info":
            row.rule = "info: not gated"
            continue
        if not in_base:
            row.rule = "new in the candidate: no baseline"
            continue
        if kind == "timing" and timing_apart:
            row.rule = f"not comparable, not gated: {timing_apart}"
            continue
        tol = _tolerance_for(key, spec, kind, policy.tolerances, policy.quality_tolerance, policy.timing_tolerance)
        row.rule = _rule(direction, tol)
        if not in_cand or not _is_number(c) or not _is_number(b):
            row.verdict = FAIL
            row.rule = f"{row.rule}; missing in the candidate" if not in_cand else f"{row.rule}; not a number"
            continue
        worse_by = {"higher": b - c, "lower": c - b}.get(direction, abs(c - b))
        row.regression = worse_by if worse_by > EPSILON else None
        row.allowed = tol.allowed(b)
        row.verdict = PASS if worse_by <= row.allowed + EPSILON else FAIL
        _accept(row, tradeoffs, spec.pattern, worse_by)
    for row in _psi_rows(output_psi or {}, policy):
        rows.append(row)
        _accept(row, tradeoffs, None, row.regression)
    return GateReport(rows, tradeoffs)


def _accept(row: GateRow, tradeoffs: list[Tradeoff], declared: str | None, worse_by: float | None) -> None:
    """Let a failing row through when the first tradeoff naming it covers the regression."""
    if row.verdict != FAIL:
        return
    for tradeoff in tradeoffs:
        if _matches(tradeoff.metric, row.metric, declared):
            if worse_by is not None and worse_by <= tradeoff.max_regression + EPSILON:
                row.verdict, row.tradeoff = ACCEPTED, tradeoff
                tradeoff.applied_to.append(row.metric)
            else:
                tradeoff.exceeded.append(row.metric)
            return


def policy_keys(pairs) -> list[str]:
    """The keys a policy may name, over (baseline doc, candidate doc, output_psi or None) of a gate run."""
    keys: list[str] = []
    for baseline, candidate, psi in pairs:
        keys += [key for key, *_ in _paired_leaves(baseline, candidate)]
        keys += [f"{OUTPUT_PSI}.{signal}" for signal in PSI_SIGNALS if (psi or {}).get(signal) is not None]
    return list(dict.fromkeys(keys))
