"""The metric diff: two metrics documents side by side, pure (no git, no DVC, no disk).

- :func:`diff_docs` is ``dvc metrics diff --json`` for one file, exactly.
- :func:`comparable` says whether two results were computed on the same inputs.
- :func:`metric_rows` is the human table: better / worse by each metric's direction.
- :func:`paired_leaves` is the one walk over both documents' metrics, shared with the gate's rules.

Directions come from :func:`metricspecs.spec`, never from a list of our own; ``metricspecs``
is imported inside the functions that need a direction: ``git model diff --json`` needs none.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from gitmodel.metricspecs import iter_leaves


# Floats in metrics files are rounded to 6 decimals; this slack only absorbs
# the last bits of float arithmetic (0.925 - 0.84 = 0.08500000000000008).
EPSILON = 1e-9

BETTER, WORSE, SAME, CHANGED = "better", "worse", "same", "changed"


def is_number(value: Any) -> bool:
    """An int or float, not a bool (JSON's true is no number to compare)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metrics_of(doc: Mapping | None) -> Mapping:
    """The ``metrics`` section of a metrics document, or the mapping itself when it is one already."""
    if doc is None:
        return {}
    if "schema_version" in doc and isinstance(doc.get("metrics"), Mapping):
        return doc["metrics"]
    return doc


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
    return dict(iter_leaves(extracted)) if isinstance(extracted, Mapping) else {}


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


def declared(key: str):
    """The :class:`metricspecs.MetricSpec` that declares ``key``, or None for a key no metric declares."""
    from gitmodel import metricspecs

    try:
        return metricspecs.spec(key)
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
    if not (is_number(old) and is_number(new)):
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
    for key, o, n, spec, change, _, _ in paired_leaves(old, new):
        direction = spec.direction.value if spec else None
        verdict = _verdict(direction, o, n)
        if verdict == SAME and not all:
            continue
        rows.append(MetricRow(key, o, n, change, verdict, direction, spec.kind.value if spec else None))
    return rows


def paired_leaves(old: Mapping | None, new: Mapping | None):
    """(key, old value, new value, spec or None, change or None, in old, in new) for every metrics
    leaf of either side, in merged key order: the one walk behind the diff table and the gate."""
    old_flat, new_flat = dict(iter_leaves(metrics_of(old))), dict(iter_leaves(metrics_of(new)))
    for key in merged_keys(list(old_flat), list(new_flat)):
        o, n = old_flat.get(key), new_flat.get(key)
        change = n - o if is_number(o) and is_number(n) else None
        yield key, o, n, declared(key), change, key in old_flat, key in new_flat
