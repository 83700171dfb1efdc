"""``git model diff``: the stored results of two revisions, side by side.

Both sides are read from git objects (one ``git cat-file --batch`` for two
revisions) or from the workspace, never by checking a revision out and never
through a DVC repo object, so a diff costs a few git round trips whatever the
history holds. The comparison itself is pure: :mod:`metricdiff` (the dvc-shaped diff and the
better / worse table), :mod:`behaviour` (per example, PSI) and, for a verdict, :mod:`gaterules`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gitmodel import dvcyaml, gitrepo, metricdiff, provenance, refs, revisions, reviewmetric, store
from gitmodel import registry as registry_mod
from gitmodel import results as results_mod
from gitmodel.errors import GitModelError, ModelNotFound, NotInitialized
from gitmodel.revisions import Revision, WORKSPACE

if TYPE_CHECKING:   # the behavioural diff and the gate's rules are imported only when asked for
    from gitmodel.gaterules import GateReport


@dataclass
class FileDiff:
    """One metrics file (one model on one eval set) at the two revisions."""

    path: str                               # metrics/<model>/<evalset>.json, relative to the root
    model: str
    evalset: str
    old: dict | None                        # the metrics document, None when missing at that side
    new: dict | None
    comparable: bool                        # same eval set md5 and eval params (True when a side is missing)
    reason: str                             # why not comparable
    dvc: dict                               # metricdiff.diff_docs: what `dvc metrics diff --json` says for it
    rows: list[metricdiff.MetricRow]        # the metrics leaves, with verdicts (all of them)
    behaviour: dict | None = None           # behaviour.behaviour of the two outputs files
    gate: GateReport | None = None          # regressions by params.yaml gate rules (for --md)
    # side ("old" | "new") -> why its metrics do not describe the checkpoint (or eval set) its
    # revision tracks: measured on another md5, then committed without re-evaluating
    stale: dict[str, str] = field(default_factory=dict)

    @property
    def changed_rows(self) -> list[metricdiff.MetricRow]:
        return [r for r in self.rows if r.verdict != metricdiff.SAME]


@dataclass
class DiffResult:
    root: Path
    old: Revision
    new: Revision
    files: list[FileDiff] = field(default_factory=list)
    weights: list | None = None     # weightsdiff.ModelWeights per model, with --weights
    reviews: list[reviewmetric.ReviewDiff] = field(default_factory=list)   # per model with a review file
    show_all: bool = False

    def dvc_json(self, cwd: Path | str | None = None) -> dict:
        """``dvc metrics diff --json``: ``{path: {key: {"old", "new", "diff"}}}``, paths relative to ``cwd``
        as DVC prints them, files without a change left out."""
        cwd = Path(cwd or os.getcwd())
        found = {os.path.relpath(self.root / f.path, cwd): f.dvc for f in self.files if f.dvc}
        for review in self.reviews:
            entry = review.dvc_entry(self.show_all)
            if entry:
                found[os.path.relpath(self.root / review.path, cwd)] = entry
        return found

    def to_dict(self, examples: bool = False, cwd: Path | str | None = None) -> dict:
        """``--json``: :meth:`dvc_json` as it is; with ``examples``, that under ``metrics`` beside each
        file's comparability, stale sides and behavioural diff."""
        data = self.dvc_json(cwd)
        if not examples and self.weights is None:
            return data
        if not examples:
            return {"metrics": data, "weights": [w.to_dict() for w in self.weights]}
        cwd = Path(cwd or os.getcwd())
        shown = {f.path: os.path.relpath(self.root / f.path, cwd) for f in self.files}
        return {
            "metrics": data,
            "comparability": {shown[f.path]: {"comparable": f.comparable, "reason": f.reason or None}
                              for f in self.files},
            "stale": {shown[f.path]: f.stale for f in self.files if f.stale},
            "behaviour": {shown[f.path]: f.behaviour for f in self.files if f.behaviour is not None},
            **({"review": [r.to_dict() for r in self.reviews]} if self.reviews else {}),
            **({"weights": [w.to_dict() for w in self.weights]} if self.weights is not None else {}),
        }

    @property
    def not_comparable(self) -> list[FileDiff]:
        return [f for f in self.files if not f.comparable]

    @property
    def stale(self) -> list[FileDiff]:
        return [f for f in self.files if f.stale]


def _open_root(start: Path | None) -> Path:
    # project.open_root without importing gitmodel.project (DVC store, hashing, shutil): the
    # same check, kept here because diff is the command that must start fastest
    root = gitrepo.find_root(start)
    if not (root / dvcyaml.DVC_YAML).is_file() or not (root / ".dvc").is_dir():
        raise NotInitialized(root)
    return root


def _implied_model(revs: list[Revision], model: str | None) -> str | None:
    if model is not None:
        return refs.check_name(model, "model name")
    named = list(dict.fromkeys(r.model for r in revs if r.model))
    if len(named) > 1:
        raise GitModelError(f"{revs[0].text} and {revs[1].text} name different models ({', '.join(named)}): "
                            "diff compares one model's results across revisions",
                            hint=f"compare both revisions for one model with --model {named[0]}")
    return named[0] if named else None


def _read(root: Path, revs: list[Revision], model: str | None, evalset: str | None,
          with_outputs: bool) -> list[list[results_mod.Result]]:
    if not any(r.is_workspace for r in revs):
        return results_mod.results_at_many(root, revs, model, evalset, with_outputs)
    return [results_mod.results_at(root, r, model, evalset, with_outputs) for r in revs]


def _add_inputs(root: Path, doc: dict, behaviour: dict) -> None:
    """Best effort: the input and expected answer of every listed example, from the eval set
    the newer result was computed on (its DVC cache object, else the workspace file when it is
    still that version). A reviewer reads what the review said, not only its id."""
    import json

    ref = doc.get("evalset") or {}
    if not behaviour["examples"] or not ref.get("md5") or not ref.get("path"):
        return
    candidates = [store.cache_path(root, ref["md5"])]
    tracked = store.tracked(root, root / ref["path"]) if (root / ref["path"]).is_file() else None
    if tracked is not None and tracked.md5 == ref["md5"]:
        candidates.append(root / ref["path"])
    source = next((p for p in candidates if p.is_file()), None)
    if source is None:
        return
    wanted = behaviour["examples"]
    try:
        with open(source, encoding="utf-8") as lines:
            for line in lines:
                try:
                    example = json.loads(line)
                except ValueError:
                    continue
                entry = wanted.get(example.get("id")) if isinstance(example, dict) else None
                if entry is not None:
                    entry["input"] = example.get("input")
                    entry["expected"] = example.get("expected")
    except (OSError, UnicodeDecodeError):
        return


def _check_names(root: Path, revs: list[Revision], model: str | None, evalset: str | None,
                 registry) -> None:
    """A model or eval set that nothing at either revision (or in the workspace) knows is an error
    with "did you mean", never an empty diff."""
    from gitmodel import known

    commits = [r.commit for r in revs] + [None]
    if model is not None:
        tag_models = registry.models() if registry is not None else ()
        known.check_model(root, model, known.models(root, commits, tag_models))
    if evalset is not None:
        known.check_evalset(root, evalset, known.evalsets(root, commits, model))


def diff(a: str | None = None, b: str | None = None, *, model: str | None = None, evalset: str | None = None,
         all: bool = False, examples: bool = False, verdict: bool = False, weights: bool = False,
         start: Path | None = None) -> DiffResult:
    """The stored results of revision ``a`` (default HEAD) against ``b`` (default the workspace).

    ``model`` / ``evalset`` keep only those results; a registry reference
    (``chat@v1.2.0``, ``chat#prod``) implies its model; a name known nowhere
    raises ModelNotFound / EvalSetNotFound with the closest names. ``all`` keeps
    unchanged keys in the DVC-shaped part (as ``dvc metrics diff --all``);
    ``examples`` adds the behavioural diff of the outputs files; ``verdict``
    checks every comparable, fresh pair with the gate's rules (params.yaml
    ``gate:``, old side as the baseline, output PSI included), for the
    pull-request comment's verdict line. Each side's result is checked against
    the model and eval set md5s its revision tracks (``FileDiff.stale``). ``weights`` adds, per model
    (the one named, else each with results), :func:`weightsdiff.between` of its two checkpoints.
    """
    root = _open_root(start)
    if evalset is not None:
        refs.check_name(evalset, "eval set name")
    texts = ["HEAD" if a is None else a, WORKSPACE if b is None else b]
    registry = registry_mod.load(root) if any("@" in t or "#" in t for t in texts) else None
    revs = [revisions.resolve(root, t, registry) for t in texts]
    model = _implied_model(revs, model)
    old_results, new_results = _read(root, revs, model, evalset, examples or verdict)
    if not old_results and not new_results and (model is not None or evalset is not None):
        _check_names(root, revs, model, evalset, registry)
        what = f"model '{model}'" if model else "any model"
        what += f" on eval set '{evalset}'" if evalset else ""
        raise ModelNotFound(f"no stored results of {what} at {revs[0].label} or {revs[1].label}",
                            hint=f"evaluate it with `git model eval {model or 'MODEL'} --evalset "
                                 f"{evalset or 'NAME'}` and commit the metrics")
    policy = None
    if verdict:
        from gitmodel import params

        policy = params.gate_policy(root)
    old_by_path = {r.path: r for r in old_results}
    new_by_path = {r.path: r for r in new_results}
    result = DiffResult(root, revs[0], revs[1], show_all=all)
    # commit -> path -> the md5 that revision tracks, both sides through one `git cat-file --batch`
    tracked = store.tracked_md5s(root, [r.commit for r in revs],
                                 [p for r in old_results + new_results for p in provenance.tracked_paths(r.doc)])
    gated = []
    for path in metricdiff.merged_keys(list(old_by_path), list(new_by_path)):
        o, n = old_by_path.get(path), new_by_path.get(path)
        either = n or o
        old_doc, new_doc = (o.doc if o else None), (n.doc if n else None)
        same, reason = metricdiff.comparable(old_doc, new_doc) if o and n else (True, "")
        file = FileDiff(path, either.model, either.evalset, old_doc, new_doc, same, reason,
                        metricdiff.diff_docs(old_doc, new_doc, all), metricdiff.metric_rows(old_doc, new_doc))
        for side, rev, res in (("old", revs[0], o), ("new", revs[1], n)):
            reasons = provenance.stale_at(root, rev, res.doc, tracked=tracked[rev.commit]) if res else []
            if reasons:
                file.stale[side] = provenance.describe(res.path, rev.label, reasons)
        if examples or verdict:
            from gitmodel import behaviour

            file.behaviour = behaviour.behaviour(o.outputs if o else None, n.outputs if n else None,
                                               f"{dvcyaml.outputs_path(file.model, file.evalset)} at {revs[0].label}",
                                               f"{dvcyaml.outputs_path(file.model, file.evalset)} at {revs[1].label}")
        if file.behaviour is not None and examples:
            _add_inputs(root, new_doc or old_doc, file.behaviour)
        if policy and o and n and same and not file.stale:
            gated.append((file, old_doc, new_doc, file.behaviour["psi"] if o.outputs and n.outputs else None))
        result.files.append(file)
    for m in [model] if model else sorted({f.model for f in result.files}):
        found = reviewmetric.sides(root, m, revs, registry)
        if found is not None:
            result.reviews.append(reviewmetric.compare(m, *found))
    if weights:
        from gitmodel import weightsdiff

        models = [model] if model else sorted({f.model for f in result.files})
        result.weights = [weightsdiff.between(root, m, revs[0], revs[1]) for m in models]
    if policy and gated:
        from gitmodel import gaterules

        policy.check_names(gaterules.policy_keys([(b, c, psi) for _, b, c, psi in gated])
                           + reviewmetric.gate_keys(root, [s for r in result.reviews for s in (r.old, r.new)]))
        for file, old_doc, new_doc, psi in gated:
            file.gate = gaterules.gate(old_doc, new_doc, policy=policy, output_psi=psi)
    if policy:
        from gitmodel import reviewgate

        for review in result.reviews:
            review.gate = reviewgate.review_gate(review.old, review.new, policy)
    return result
