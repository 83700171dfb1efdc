"""The behavioural diff: two ``outputs.jsonl`` files compared example by example, pure.

- :func:`behaviour` lists which examples flipped (correct / wrong, label, generation), matched by id.
- :func:`output_psi` is the PSI of the two files' distributions (labels, confidences, output lengths),
  read by the diff and by the gate's ``output_psi.*`` rows.

``drift`` (numpy) is imported only when a PSI is computed: ``git model diff --json`` needs none.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from gitmodel import jsonio
from gitmodel.errors import InvalidMetrics
from gitmodel.metricdiff import is_number


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
    return [float(r[key]) for r in records.values() if is_number(r.get(key)) and math.isfinite(r[key])]
