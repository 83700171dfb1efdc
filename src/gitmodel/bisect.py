"""``git model bisect``: the first checkpoint between a good and a bad revision that is bad, as
``git bisect`` finds the first bad commit.

The candidates are the first-parent commits after ``good`` up to ``bad`` that change the model's
tracked md5 (a commit that leaves it alone cannot have changed its answers). Each step judges one
checkpoint: from the outputs stored at its commit when they were computed on that very md5 (and the
eval set and params recorded at good), else by evaluating it in-process from the DVC cache by md5
(:func:`evaluate.rerun_stored`, fetched from the DVC remote when missing): on the one example, or on
the eval set for a metric. Nothing is checked out and nothing is written: the workspace is never
touched. A checkpoint md5 judged once is not judged again.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from gitmodel import dvcyaml, gitobjects, gitrepo, refs, revisions, store
from gitmodel import results as results_mod
from gitmodel.errors import GitModelError, ModelNotFound
from gitmodel.revisions import Revision


class BisectError(GitModelError):
    pass


@dataclass
class Step:
    """One checkpoint judged."""

    commit: str
    md5: str
    bad: bool
    how: str                         # "stored" (read from its outputs) | "evaluated" | "same md5 as ..."
    value: object = None             # the example's answer, or the metric's value
    detail: str = ""                 # e.g. "correct", "wrong", "0.9250 (good 0.9700, allowed 0)"
    subject: str = ""                # the commit's subject line

    def to_dict(self) -> dict:
        return {"commit": self.commit, "md5": self.md5, "bad": self.bad, "how": self.how, "value": self.value,
                "detail": self.detail, "subject": self.subject}


@dataclass
class BisectResult:
    model: str
    evalset: str
    target: str                      # "example r0142" or "metric accuracy"
    good: Revision
    bad: Revision
    candidates: list[str]            # the md5-changing commits, oldest first
    steps: list[Step] = field(default_factory=list)
    first_bad: str | None = None
    before: str | None = None        # the commit whose checkpoint precedes it (good, or a candidate)
    lineage: list[dict] = field(default_factory=list)    # [{"key", "old", "new"}] of the checkpoint's lineage
    weights: object = None           # weightsdiff.ModelWeights of before -> first_bad

    @property
    def evaluations(self) -> int:
        return sum(1 for s in self.steps if s.how == "evaluated")

    @property
    def max_evaluations(self) -> int:
        """⌈log2(n)⌉ for n candidates: what a binary search needs at most between the two ends."""
        return math.ceil(math.log2(len(self.candidates))) if len(self.candidates) > 1 else 0

    def to_dict(self) -> dict:
        return {"model": self.model, "evalset": self.evalset, "target": self.target,
                "good": {"revision": self.good.label, "commit": self.good.commit},
                "bad": {"revision": self.bad.label, "commit": self.bad.commit},
                "candidates": self.candidates, "steps": [s.to_dict() for s in self.steps],
                "evaluations": self.evaluations, "first_bad": self.first_bad, "before": self.before,
                "lineage": self.lineage, "weights": self.weights.to_dict() if self.weights is not None else None}


# ----------------------------------------------------------------------------- pure parts


def md5_changes(commits: list[str], md5s: dict[str, str | None], start_md5: str | None) -> list[str]:
    """The commits (oldest first) whose tracked md5 differs from the one before them."""
    changed, previous = [], start_md5
    for commit in commits:
        md5 = md5s.get(commit)
        if md5 is not None and md5 != previous:
            changed.append(commit)
        if md5 is not None:
            previous = md5
    return changed


def search(n: int, is_bad: Callable[[int], bool]) -> int:
    """The first index in 0..n-1 that is bad, given that index n-1 is bad and every index after a bad
    one is bad (git bisect's assumption); ``is_bad`` is asked ⌈log2(n)⌉ times at most."""
    lo, hi = -1, n - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if is_bad(mid):
            hi = mid
        else:
            lo = mid
    return hi


def lineage_changes(old: dict, new: dict, prefix: str = "") -> list[dict]:
    """Dotted keys of two lineage dicts that differ: dataset md5, params, base model, duration..."""
    changes = []
    for key in list(old) + [k for k in new if k not in old]:
        a, b = old.get(key), new.get(key)
        dotted = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            changes += lineage_changes(a, b, dotted + ".")
        elif a != b:
            changes.append({"key": dotted, "old": a, "new": b})
    return changes


class Judge:
    """Says whether a checkpoint is bad: for an example, its answer is wrong (or differs from good's
    when the example has no expected answer); for a metric, worse than good's beyond the tolerance."""

    def __init__(self, good_doc: dict, example_id: str | None = None, good_record: dict | None = None,
                 metric: str | None = None, threshold: float | None = None, policy=None):
        self.good_doc, self.example_id, self.good_record = good_doc, example_id, good_record
        self.metric, self.threshold, self.policy = metric, threshold, policy

    def example(self, record: dict | None) -> tuple[bool, object, str]:
        if record is None:
            return True, None, "no answer"
        answer = record.get("label") if record.get("label") is not None else record.get("output")
        if isinstance(record.get("correct"), bool) and isinstance(self.good_record.get("correct"), bool):
            return not record["correct"], answer, "correct" if record["correct"] else "wrong"
        good = self.good_record.get("label") if self.good_record.get("label") is not None \
            else self.good_record.get("output")
        return answer != good, answer, "same answer as good" if answer == good else "answer differs from good's"

    def metric_value(self, doc: dict) -> tuple[bool, object, str]:
        from gitmodel import gaterules, history, metricspecs

        good, value = history.metric_value(self.good_doc["metrics"], self.metric), \
            history.metric_value(doc["metrics"], self.metric)
        if value is None:
            return True, None, f"{self.metric} missing"
        if self.threshold is not None:
            direction = metricspecs.spec(self.metric).direction.value
            worse = {"higher": good - value, "lower": value - good}.get(direction, abs(value - good))
            return worse > self.threshold, value, f"{value:.4f} (good {good:.4f}, threshold {self.threshold:g})"
        report = gaterules.gate(self.good_doc, doc, policy=self.policy)
        row = next(r for r in report.rows if r.metric == self.metric)
        bad = row.verdict in (gaterules.FAIL, gaterules.ACCEPTED)
        return bad, value, f"{value:.4f} (good {good:.4f}, gate rule {row.rule})"


# ----------------------------------------------------------------------------- reading the repository


def _first_parent(root: Path, good: str, bad: str) -> list[str]:
    out = gitrepo.run_git(root, "rev-list", "--first-parent", "--reverse", f"{good}..{bad}")
    return out.decode().split()


def bisect(root: Path, model: str, good: str, bad: str, *, example_id: str | None = None,
           metric: str | None = None, threshold: float | None = None, evalset: str | None = None,
           on_step: Callable[[Step], None] | None = None) -> BisectResult:
    """Find the first checkpoint of ``model`` between ``good`` and ``bad`` that is bad for one example
    (``example_id``) or for a metric (``metric``). ``on_step`` hears each step as it is judged."""
    root = Path(root)
    refs.check_name(model, "model name")
    if (example_id is None) == (metric is None):
        raise BisectError("bisect needs an example ID or --metric KEY, not both", hint="e.g. `git model bisect "
                          f"{model} r0142 --good ... --bad ...` or `--metric accuracy`")
    good_rev, bad_rev = (_revision(root, model, text) for text in (good, bad))
    for rev, name in ((good_rev, "--good"), (bad_rev, "--bad")):
        if rev.is_workspace:
            raise BisectError(f"{name} workspace: bisect reads committed checkpoints", hint="commit it first")
    if not gitrepo.is_ancestor(root, good_rev.commit, bad_rev.commit) or good_rev.commit == bad_rev.commit:
        raise BisectError(f"{good_rev.label} ({good_rev.commit[:12]}) is not an ancestor of {bad_rev.label} "
                          f"({bad_rev.commit[:12]}): there is no history from good to bad to search",
                          hint="swap --good and --bad, or name a good revision that the bad one descends from")
    rel = dvcyaml.model_path(model)
    commits = _first_parent(root, good_rev.commit, bad_rev.commit)
    md5s = {c: m[rel] for c, m in store.tracked_md5s(root, [good_rev.commit] + commits, [rel], lenient=True).items()}
    good_md5, bad_md5 = md5s[good_rev.commit], md5s[bad_rev.commit]
    for rev, md5 in ((good_rev, good_md5), (bad_rev, bad_md5)):
        if md5 is None:
            raise ModelNotFound(f"{rev.label}: model '{model}' has no tracked checkpoint ({rel}) there")
    if good_md5 == bad_md5:
        raise BisectError(f"{good_rev.label} and {bad_rev.label} track the same checkpoint of {model} (md5 "
                          f"{good_md5}): no checkpoint change between them to blame",
                          hint="a change of behaviour with the same weights comes from the eval set or params: "
                               f"`git model diff {good_rev.label} {bad_rev.label}`")
    candidates = md5_changes(commits, md5s, good_md5)
    good_result = _good_result(root, good_rev, model, evalset)
    good_doc, evalset = good_result.doc, good_result.evalset
    if (good_doc.get("model") or {}).get("md5") != good_md5:
        raise BisectError(f"the results of {model} on {evalset} stored at {good_rev.label} were computed on "
                          f"md5 {(good_doc.get('model') or {}).get('md5')}, not on the checkpoint it tracks (md5 "
                          f"{good_md5}): they cannot say what good answered",
                          hint="name as --good a release evaluated on its own checkpoint (`git model log`)")
    judge, only = _judge(root, good_rev, good_result, example_id, metric, threshold)
    result = BisectResult(model, evalset, f"example {example_id}" if example_id else f"metric {metric}",
                          good_rev, bad_rev, candidates)
    subjects = {c: i["subject"] for c, i in gitrepo.commit_info(root, candidates + [bad_rev.commit]).items()}
    verdicts: dict[str, Step] = {}

    def judged(commit: str) -> bool:
        md5 = md5s[commit]
        if md5 in verdicts:
            first = verdicts[md5]
            step = Step(commit, md5, first.bad, f"same md5 as {first.commit[:12]}", first.value, first.detail,
                        subjects.get(commit, ""))
        else:
            step = _step(root, commit, md5, model, evalset, good_doc, judge, only, result)
            step.subject = subjects.get(commit, "")
            verdicts[md5] = step
        result.steps.append(step)
        if on_step:
            on_step(step)
        return step.bad

    if not judged(bad_rev.commit):
        what = f"example {example_id!r}" if example_id else f"metric {metric}"
        raise BisectError(f"{what} is good at {bad_rev.label} ({result.steps[-1].detail}): nothing to bisect",
                          hint="name as --bad a revision where it is bad (`git model blame` shows every release)"
                          if example_id else "name as --bad a revision where it is worse")
    index = search(len(candidates), lambda i: judged(candidates[i]))
    result.first_bad = candidates[index]
    result.before = candidates[index - 1] if index > 0 else good_rev.commit
    _explain(root, result)
    return result


def _revision(root: Path, model: str, text: str) -> Revision:
    """A revision as every command reads it, and a bare version (``v1.1.0``) as a release of ``model``
    when no git ref has that name."""
    bare = text if text.startswith("v") else f"v{text}"
    if refs.VERSION_RE.match(bare) and gitrepo.resolve_commit(root, text) is None:
        text = f"{model}@{bare}"
    return revisions.resolve(root, text)


def _good_result(root: Path, good: Revision, model: str, evalset: str | None) -> results_mod.Result:
    found = results_mod.results_at(root, good, model, evalset, with_outputs=True)
    if evalset is None and len({r.evalset for r in found}) > 1:
        names = ", ".join(sorted(r.evalset for r in found))
        raise BisectError(f"{model} has results on several eval sets at {good.label} ({names}): say which",
                          hint=f"e.g. --evalset {found[0].evalset}")
    if not found:
        raise BisectError(f"{good.label} has no stored results of {model}" + (f" on {evalset}" if evalset else "")
                          + ": bisect judges against what good answered, with the params recorded there",
                          hint="name as --good a release that was evaluated (`git model log` lists them)")
    return found[0]


def _judge(root, good_rev, good: results_mod.Result, example_id, metric, threshold):
    from gitmodel import blame

    model, evalset, good_doc = good.model, good.evalset, good.doc
    if example_id is not None:
        record = blame.find_record(good.outputs, example_id)
        if record is None:
            raise BisectError(f"example {example_id!r} is not in the outputs of {model} on {evalset} at "
                              f"{good_rev.label}", hint=f"`git model blame {model} {example_id}` shows where it is")
        judge = Judge(good_doc, example_id=example_id, good_record=record)
        if judge.example(record)[0]:
            raise BisectError(f"example {example_id!r} is already wrong at {good_rev.label}: nothing to bisect",
                              hint="name as --good a revision where it is right")
        return judge, {example_id}
    from gitmodel import history, params

    if history.metric_value(good_doc["metrics"], metric) is None:
        from gitmodel import known, metricspecs

        keys = [k for k, _ in metricspecs.iter_leaves(good_doc["metrics"])]
        raise BisectError(f"metric {metric!r} is not a number in the results of {model} on {evalset} at "
                          f"{good_rev.label}{known.suggestion(metric, keys)}")
    return Judge(good_doc, metric=metric, threshold=threshold, policy=params.gate_policy(root)), None


def _step(root, commit, md5, model, evalset, good_doc, judge: Judge, only, result) -> Step:
    from gitmodel import blame

    stored = results_mod.results_at(root, Revision(commit, commit), model, evalset, with_outputs=True)
    doc = stored[0].doc if stored else None
    usable = doc is not None and (doc.get("model") or {}).get("md5") == md5 and \
        (doc.get("evalset") or {}).get("md5") == good_doc["evalset"]["md5"] and doc.get("params") == good_doc["params"]
    if usable and (only is None or stored[0].outputs is not None):
        how = "stored"
        record = blame.find_record(stored[0].outputs, judge.example_id) if only else None
    else:
        how = "evaluated"
        doc, record = _evaluate(root, commit, md5, model, good_doc, only, result)
    bad, value, detail = judge.example(record) if only else judge.metric_value(doc)
    return Step(commit, md5, bad, how, value, detail)


def _evaluate(root, commit, md5, model, good_doc, only, result):
    from gitmodel import blame, checkpoints, evaluate

    rel = dvcyaml.model_path(model)
    try:
        checkpoints.object_path(root, md5, rel, f"model '{model}' at {commit[:12]}")
    except ModelNotFound as e:
        known_good = [s.commit for s in result.steps if not s.bad]
        known_bad = [s.commit for s in result.steps if s.bad]
        progress = ""
        if known_bad:
            order = {c: i for i, c in enumerate(result.candidates)}
            lo = max((c for c in known_good if c in order), key=order.get, default=result.good.commit)
            hi = min((c for c in known_bad if c in order), key=order.get, default=result.bad.commit)
            progress = f"; so far: good up to {lo[:12]}, bad from {hi[:12]}"
            hint = (f"push it to the DVC remote from a machine that has it (`dvc push`), or resume with "
                    f"--good {lo[:12]} --bad {hi[:12]}")
        else:
            hint = e.hint
        raise BisectError(f"cannot judge commit {commit[:12]}: its checkpoint (md5 {md5}) is in neither the "
                          f"local DVC cache nor the DVC remote{progress}", hint=hint) from None
    evalset_ref = good_doc["evalset"]
    checkpoints.object_path(root, evalset_ref["md5"], evalset_ref["path"], f"eval set {evalset_ref['name']}")
    ref = {"name": model, "path": rel, "md5": md5}
    rerun = evaluate.rerun_stored(root, good_doc, ref, model_what=f"model '{model}' at {commit[:12]}", only=only)
    record = blame.find_record(rerun.outputs, next(iter(only))) if only else None
    return rerun.doc, record


def _explain(root: Path, result: BisectResult) -> None:
    """The first bad checkpoint against the one before it: lineage and weights."""
    from gitmodel import history, weightsdiff

    before, first = Revision(result.before, result.before), Revision(result.first_bad, result.first_bad)
    with gitobjects.ObjectReader(root) as reader:
        old = history.tracked_at(root, before, [result.model], reader)[result.model]
        new = history.tracked_at(root, first, [result.model], reader)[result.model]
    result.lineage = lineage_changes(old.lineage, new.lineage)
    try:
        result.weights = weightsdiff.between(root, result.model, before, first)
    except GitModelError as e:
        result.weights = weightsdiff.ModelWeights(result.model, note=f"weights not compared: {e.message}")
