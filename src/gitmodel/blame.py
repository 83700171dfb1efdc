"""``git model blame``: one example at every release of a model, as ``git blame`` shows one line.

Every release's outputs file is read from git objects in one pass (:func:`results.results_at_many`,
as ``log`` reads metrics), and only the example's line of each is parsed; its input and expected
answer come once from the eval set the newest result was computed on (its DVC cache object, or the
workspace file when it holds those bytes). A release computed on another eval set is shown when that
eval set's copy of the example is the same, and said otherwise instead of a row.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import dvcyaml, gitrepo, jsonio, refs
from gitmodel import registry as registry_mod
from gitmodel import results as results_mod
from gitmodel.errors import EvalSetNotFound, GitModelError
from gitmodel.revisions import WORKSPACE, Revision


class UnknownExample(GitModelError):
    pass


@dataclass
class BlameRow:
    """The example at one release (or the workspace); ``note`` instead of an answer when there is none."""

    revision: str                    # the version (v1.2.0) or "workspace"
    commit: str | None
    stages: list[str] = field(default_factory=list)    # stages the release holds now
    held: list[str] = field(default_factory=list)      # every stage it was ever assigned
    record: dict | None = None       # its line of outputs.jsonl
    evalset_md5: str | None = None
    model_md5: str | None = None
    note: str = ""
    answer_changed: bool = False     # against the row above that has an answer
    correct_flipped: bool = False

    @property
    def answer(self):
        if self.record is None:
            return None
        return self.record.get("label") if self.record.get("label") is not None else self.record.get("output")

    def to_dict(self) -> dict:
        r = self.record or {}
        return {"revision": self.revision, "commit": self.commit, "stages": self.stages, "held": self.held,
                "output": r.get("output"), "label": r.get("label"), "confidence": r.get("confidence"),
                "correct": r.get("correct"), "answer_changed": self.answer_changed,
                "correct_flipped": self.correct_flipped, "evalset_md5": self.evalset_md5,
                "model_md5": self.model_md5, "note": self.note or None}


@dataclass
class BlameResult:
    model: str
    evalset: str
    id: str
    example: dict | None             # the eval set line: input, expected, labels, category
    rows: list[BlameRow]

    def to_dict(self) -> dict:
        e = self.example or {}
        return {"model": self.model, "evalset": self.evalset, "id": self.id, "input": e.get("input"),
                "expected": e.get("expected"), "category": e.get("category"),
                "rows": [r.to_dict() for r in self.rows]}


def find_record(outputs: bytes | None, example_id: str) -> dict | None:
    """The line of an outputs file whose id is ``example_id``, parsing only the lines that mention it."""
    if not outputs:
        return None
    # the line as resultfiles writes it; eval set ids are unique, so the first such line is the one
    canonical = b'{"id":' + json.dumps(example_id, ensure_ascii=False).encode("utf-8") + b","
    at = outputs.find(canonical)
    if at >= 0 and (at == 0 or outputs[at - 1:at] == b"\n"):
        end = outputs.find(b"\n", at)
        try:
            record = jsonio.loads(outputs[at:len(outputs) if end < 0 else end])
        except ValueError:
            record = None
        if isinstance(record, dict) and record.get("id") == example_id:
            return record
    found = None
    for needle in {json.dumps(example_id, ensure_ascii=False).encode("utf-8"), json.dumps(example_id).encode()}:
        at = outputs.find(needle)
        while at >= 0:
            start = outputs.rfind(b"\n", 0, at) + 1
            end = outputs.find(b"\n", at)
            end = len(outputs) if end < 0 else end
            try:
                record = jsonio.loads(outputs[start:end])
            except ValueError:
                record = None
            if isinstance(record, dict) and record.get("id") == example_id:
                found = record          # later lines win, as behaviour.parse_outputs reads them
            at = outputs.find(needle, end)
    return found


def mark_changes(rows: list[BlameRow]) -> None:
    """Set each answered row's marks against the answered row before it (pure)."""
    previous = None
    for row in rows:
        if row.record is None:
            continue
        if previous is not None:
            row.answer_changed = row.answer != previous.answer
            before, now = previous.record.get("correct"), row.record.get("correct")
            row.correct_flipped = isinstance(before, bool) and isinstance(now, bool) and before != now
        previous = row


def _example_from(root: Path, md5: str | None, rel: str, example_id: str) -> tuple[bool, dict | None]:
    """(readable, the example's line) of the eval set with this md5, read locally (never fetched)."""
    from gitmodel import store

    if not md5:
        return False, None
    candidates = [store.cache_path(root, md5)]
    if (root / rel).is_file() and store.tracked_md5s(root, [None], [rel], lenient=True)[None][rel] == md5:
        candidates.append(root / rel)
    source = next((p for p in candidates if p.is_file()), None)
    if source is None:
        return False, None
    return True, find_record(source.read_bytes(), example_id)


def _stages(reg, model: str) -> tuple[dict, dict]:
    """version -> stages held now; version -> every stage it was ever assigned."""
    now: dict = {}
    ever: dict = {}
    for stage, event in reg.holders(model).items():
        now.setdefault(event.version, []).append(stage)
    for event in reg.stage_events.get(model, []):
        if event.version is not None and not event.unassign:
            ever.setdefault(event.version, set()).add(event.stage)
    return now, {v: sorted(s) for v, s in ever.items()}


def _pick_evalset(model: str, evalset: str | None, found: list[list[results_mod.Result]]) -> str:
    names = sorted({r.evalset for results in found for r in results})
    if evalset is not None:
        if evalset not in names:
            from gitmodel import known

            raise EvalSetNotFound(f"no release of '{model}' has results on eval set '{evalset}'"
                                  f"{known.suggestion(evalset, names)}",
                                  hint=f"its results are on: {', '.join(names)}" if names else None)
        return evalset
    if len(names) == 1:
        return names[0]
    if not names:
        raise EvalSetNotFound(f"no release of '{model}' has stored results",
                              hint=f"evaluate and release it: `git model eval {model} --evalset NAME`")
    raise EvalSetNotFound(f"'{model}' has results on several eval sets ({', '.join(names)}): say which",
                          hint=f"e.g. --evalset {names[0]}")


def blame(root: Path, model: str, example_id: str, evalset: str | None = None) -> BlameResult:
    """The example ``example_id`` of ``model`` at every release (SemVer order) and in the workspace."""
    root = Path(root)
    refs.check_name(model, "model name")
    if evalset is not None:
        refs.check_name(evalset, "eval set name")
    reg = registry_mod.load(root)
    from gitmodel import history

    releases = history.releases_for(root, reg, model, "blame")
    revs = [Revision.of(r) for r in releases]
    with gitrepo.ObjectReader(root) as reader:
        found = results_mod.results_at_many(root, revs, model, evalset, with_outputs=True, reader=reader)
    workspace = results_mod.results_at(root, Revision(WORKSPACE, None), model, evalset, with_outputs=True)
    evalset = _pick_evalset(model, evalset, found + [workspace])
    now, ever = _stages(reg, model)
    rows = []
    for release, results in zip(releases, found):
        result = next((r for r in results if r.evalset == evalset), None)
        rows.append(_row(str(release.version), release.commit, result, example_id,
                         sorted(now.get(release.version, [])), ever.get(release.version, [])))
    ws = next((r for r in workspace if r.evalset == evalset), None)
    if ws is not None:
        rows.append(_row(WORKSPACE, None, ws, example_id, [], []))
    answered = [r for r in rows if r.record is not None]
    if not answered:
        from gitmodel import behaviour, known

        stored = [r for results in found + [workspace] for r in results if r.evalset == evalset and r.outputs]
        ids = list(behaviour.parse_outputs(stored[-1].outputs)) if stored else []
        raise UnknownExample(f"example {example_id!r} is in no release's outputs of {model} on {evalset}"
                             f"{known.suggestion(example_id, ids)}",
                             hint=f"ids look like {', '.join(ids[:3])}" if ids else None)
    reference = answered[-1]
    rel = dvcyaml.evalset_path(evalset)
    _, example = _example_from(root, reference.evalset_md5, rel, example_id)
    checked: dict[str, tuple[bool, dict | None]] = {reference.evalset_md5: (True, example)}
    for row in answered:
        if row.evalset_md5 == reference.evalset_md5:
            continue
        if row.evalset_md5 not in checked:
            checked[row.evalset_md5] = _example_from(root, row.evalset_md5, rel, example_id)
        readable, other = checked[row.evalset_md5]
        if readable and other is not None and example is not None and _same_example(other, example):
            row.note = f"eval set md5 {row.evalset_md5} (another version; this example is the same)"
        else:
            why = "does not hold it the same way" if readable else "is not in the local DVC cache to check"
            row.note = f"evaluated on another eval set (md5 {row.evalset_md5}), which {why}"
            row.record = None
    mark_changes(rows)
    return BlameResult(model, evalset, example_id, example, rows)


def _same_example(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in ("input", "expected", "labels"))


def _row(revision: str, commit: str | None, result, example_id: str, stages, held) -> BlameRow:
    row = BlameRow(revision, commit, stages, held)
    if result is None:
        row.note = "no stored result on this eval set"
        return row
    row.evalset_md5 = (result.doc.get("evalset") or {}).get("md5")
    row.model_md5 = (result.doc.get("model") or {}).get("md5")
    row.record = find_record(result.outputs, example_id)
    if row.record is None:
        row.note = "no outputs file committed" if result.outputs is None else \
            f"its eval set (md5 {row.evalset_md5}) does not hold {example_id!r}"
    return row
