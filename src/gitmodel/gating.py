"""Running the gate: ``git model gate`` (:func:`gate_candidate`) and the gate a promotion runs
(:func:`promotion_gate`): a candidate against the baseline (normally ``MODEL#prod``) on the identical eval set.

Order of work: resolve both revisions; read both stored results from git
objects (the workspace for a workspace candidate); refuse stale candidate
metrics; check, for every eval set, that the two results come from the same
eval set md5 and eval params, and refuse before any compute when they do not
and ``--rerun`` is not given. With ``--rerun`` (or when asked to), the
BASELINE checkpoint itself is evaluated on the candidate's eval set with the
candidate's params: the weights are the object whose md5 the baseline
revision's ``.dvc`` file (or ``dvc.lock``) names, read from the DVC cache (or
from the workspace when its bytes are the same), never checked out; nothing
is written to ``metrics/`` or anywhere else in the workspace (:func:`evaluate.rerun_stored`). Then
:func:`gaterules.gate` compares every metric under params.yaml ``gate:`` (:class:`gatepolicy.GatePolicy`),
and :func:`reviewgate.review_gate` the human review of the two checkpoints (:mod:`reviewmetric`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from gitmodel import behaviour, dvcyaml, gaterules, metricdiff, project, provenance, refs, revisions
from gitmodel import reviewgate, reviewmetric, store
from gitmodel import registry as registry_mod
from gitmodel import results as results_mod
from gitmodel.revisions import Revision
from gitmodel.errors import GitModelError, ModelNotFound, StaleArtifact
from gitmodel.gaterules import GateOutcome

PROD = registry_mod.PROD


class NoBaseline(GitModelError):
    """No version holds the stage the gate compares with."""

    def __init__(self, model: str, stage: str = PROD):
        super().__init__(
            f"no version of '{model}' holds stage '{stage}': there is no baseline to gate against",
            hint=f"promote one first with `git model promote {model} VERSION --stage {stage}` "
                 "(the first promotion has no holder to beat), or pass --baseline REF")
        self.model = model
        self.stage = stage


class NotComparable(GitModelError):
    """Baseline and candidate results come from different eval sets or params, and no --rerun."""

    def __init__(self, model: str, evalset: str, reason: str):
        super().__init__(
            f"cannot gate {model} on eval set '{evalset}': {reason}",
            hint="pass --rerun to evaluate the baseline checkpoint on the candidate's eval set with the "
                 "candidate's params (from the DVC cache; the workspace is not touched)")
        self.model = model
        self.evalset = evalset
        self.reason = reason


def baseline_holder(root: Path, model: str, stage: str = PROD,
                    registry: registry_mod.Registry | None = None) -> registry_mod.StageEvent | None:
    """The stage event that gave ``stage`` its current version of ``model``; None when nothing holds it
    (the first promotion to prod has no holder to beat)."""
    registry = registry or registry_mod.load(root)
    return registry.holder(model, stage)


def _resolve_baseline(root: Path, text: str, registry: registry_mod.Registry) -> Revision:
    spec = revisions.parse(text)
    if spec.kind == "stage" and registry.holder(spec.model, spec.stage) is None:
        raise NoBaseline(spec.model, spec.stage)
    return revisions.resolve(root, text, registry)


def _tracked_md5(root: Path, rev: Revision, rel: str) -> str | None:
    return store.tracked_md5s(root, [rev.commit], [rel])[rev.commit][rel]


def _model_rel(model: str, *docs: dict | None) -> str:
    for doc in docs:
        path = ((doc or {}).get("model") or {}).get("path")
        if path:
            return path
    return dvcyaml.model_path(model)


def _stale(root: Path, rev: Revision, result: results_mod.Result) -> str | None:
    """Why a stored result does not describe the checkpoint (or eval set) tracked at its revision, or None."""
    reasons = provenance.stale_at(root, rev, result.doc)
    return provenance.describe(result.path, rev.label, reasons) if reasons else None


def _candidate_results(root: Path, model: str, rev: Revision,
                       evalset: str | None) -> list[results_mod.Result]:
    results = results_mod.results_at(root, rev, model, evalset, with_outputs=True)
    if not results and evalset is not None:
        from gitmodel import known

        known.check_evalset(root, evalset, known.evalsets(root, [rev.commit, None], model))
    if not results:
        where = dvcyaml.metrics_path(model, evalset) if evalset else f"{dvcyaml.METRICS_DIR}/{model}/"
        raise ModelNotFound(f"no stored result of '{model}' at {rev.label} to gate (nothing at {where})",
                            hint=f"evaluate it first: `git model eval {model} --evalset {evalset or 'NAME'}` "
                                 "(or `dvc repro`)")
    for result in results:
        problem = _stale(root, rev, result)
        if problem:
            raise StaleArtifact(f"stale candidate metrics: {problem}",
                                hint=f"re-evaluate with `git model eval {model} --evalset {result.evalset}` "
                                     "(or `dvc repro`)")
    return results


def rerun_baseline(root: Path, model: str, rev: Revision, candidate_doc: dict,
                   baseline_doc: dict | None = None,
                   progress_factory: Callable | None = None) -> tuple[dict, bytes]:
    """The metrics document and outputs.jsonl bytes of the baseline checkpoint at ``rev``, evaluated
    now on the candidate's eval set with the candidate's params. Reads the DVC cache; writes nothing."""
    from gitmodel.evaluate import rerun_stored

    recorded = candidate_doc["params"]
    if recorded.get("runner") != "llama":
        raise GitModelError(f"--rerun evaluates checkpoints in-process with llama.cpp, but the candidate's "
                            f"results come from the {recorded.get('runner')} runner",
                            hint="evaluate the baseline with the same runner by hand, or gate stored results "
                                 "on the same eval set")
    model_rel = _model_rel(model, baseline_doc, candidate_doc)
    md5 = _tracked_md5(root, rev, model_rel)
    if md5 is None:
        raise ModelNotFound(f"{model_rel} is not tracked at {rev.label}: no .dvc file and no dvc.lock entry",
                            hint="pass --baseline with a revision where the model is tracked")
    run = rerun_stored(root, candidate_doc, {"name": model, "path": model_rel, "md5": md5},
                       model_what=f"baseline model ({rev.label})", progress_factory=progress_factory)
    return run.doc, run.outputs


def gate_candidate(model: str, baseline: str | None = None, candidate: str = revisions.WORKSPACE,
                   evalset: str | None = None, rerun: bool = False, start: Path | None = None,
                   progress_factory: Callable | None = None) -> GateOutcome:
    """Gate ``candidate`` against ``baseline`` (default ``MODEL#prod``): one report per eval set.

    Eval sets: the candidate's stored results of ``model`` (or only ``evalset``).
    Raises NoBaseline when nothing holds the baseline stage, NotComparable when
    the stored results differ in eval set md5 or params (or the baseline has
    none, or stale ones) and ``rerun`` is False, StaleArtifact when the
    candidate's metrics do not describe its checkpoint. Tolerances and accepted
    tradeoffs come from the workspace's params.yaml ``gate:``: the policy in
    force, versioned and reviewed with the code.
    """
    from gitmodel import known, params

    root = project.open_root(start)
    refs.check_name(model, "model name")
    if evalset is not None:
        refs.check_name(evalset, "eval set name")
    baseline = baseline or f"{model}#{PROD}"
    registry = registry_mod.load(root)
    policy = params.gate_policy(root)
    known.check_model(root, model, known.models(root, [None], registry.models()))
    base_rev = _resolve_baseline(root, baseline, registry)
    cand_rev = revisions.resolve(root, candidate, registry)
    candidates = _candidate_results(root, model, cand_rev, evalset)
    stored = {r.evalset: r for r in results_mod.results_at(root, base_rev, model, evalset, with_outputs=True)}

    plans = []   # (candidate result, baseline result or None, why the baseline must be re-run or None)
    for cand in candidates:
        base = stored.get(cand.evalset)
        if base is None:
            why = (f"the baseline ({base_rev.label}) has no stored result on this eval set "
                   f"({dvcyaml.metrics_path(model, cand.evalset)} does not exist there)")
        else:
            why = _stale(root, base_rev, base)
            why = f"the baseline's stored metrics are stale: {why}" if why else None
            if why is None:
                same, reason = metricdiff.comparable(base.doc, cand.doc, names=("baseline", "candidate"))
                why = None if same else (f"the baseline ({base_rev.label}) and candidate ({cand_rev.label}) "
                                         f"results are not comparable: {reason}")
        if why and not rerun:
            raise NotComparable(model, cand.evalset, why)
        plans.append((cand, base, "--rerun" if rerun and not why else why))

    compared = []   # (candidate, baseline doc, output PSI or None, why re-run)
    for cand, base, why in plans:
        if why:
            base_doc, base_outputs = rerun_baseline(root, model, base_rev, cand.doc, base.doc if base else None,
                                                    progress_factory)
        else:
            base_doc, base_outputs = base.doc, base.outputs
        psi = None
        if base_outputs and cand.outputs:
            psi = behaviour.output_psi(
                behaviour.parse_outputs(base_outputs, f"baseline outputs ({base_rev.label})"),
                behaviour.parse_outputs(cand.outputs, f"candidate outputs ({cand_rev.label})"))
        compared.append((cand, base_doc, psi, why))
    review_sides = reviewmetric.sides(root, model, [base_rev, cand_rev], registry) or [None, None]
    # every tolerance and tradeoff must name a metric of these results: a misspelt one is an error
    policy.check_names(gaterules.policy_keys([(base_doc, cand.doc, psi) for cand, base_doc, psi, _ in compared])
                       + reviewmetric.gate_keys(root, review_sides))
    reports = []
    for cand, base_doc, psi, why in compared:
        # the pure rules give the rows; whose results they compared is known here
        reports.append(dataclasses.replace(
            gaterules.gate(base_doc, cand.doc, policy=policy, output_psi=psi), model=model, evalset=cand.evalset,
            baseline=base_rev.label, candidate=cand_rev.label, baseline_doc=base_doc, candidate_doc=cand.doc,
            rerun=bool(why), rerun_reason=why, policy=f"{params.PARAMS_FILE} (workspace)"))
    review = reviewgate.review_gate(*review_sides, policy=policy, model=model)
    passed = bool(reports) and all(r.passed for r in reports) and review.passed
    return GateOutcome(model, gaterules.PASSED if passed else gaterules.FAILED,
                       gaterules.summary_line(reports, base_rev.label, review), base_rev.label, cand_rev.label,
                       reports, review)


def promotion_gate(root: Path, model: str, version: refs.Version, holder: registry_mod.StageEvent | None, *,
                   required: bool, rerun: bool = False) -> GateOutcome:
    """The gate a promotion runs: ``model@version`` against the version holding prod (``holder``).

    Nothing holds prod: status ``none`` (the first promotion has nothing to beat); ``version`` holds it:
    ``passed``, not run. ``required`` (a promotion to prod): the gate's errors propagate; otherwise they
    are recorded as ``not run``. The summary is the promotion tag's ``Gate:`` trailer."""
    if holder is None:
        return GateOutcome(model, gaterules.NO_BASELINE,
                           "none: no version holds prod yet, so there is no holder to beat")
    baseline = str(holder.version) if holder.version else holder.commit[:12]
    if holder.version == version:
        return GateOutcome(model, gaterules.PASSED, f"not needed: {version} is the prod version", baseline)
    try:
        outcome = gate_candidate(model, baseline=f"{model}#{PROD}", candidate=f"{model}@{version}", rerun=rerun,
                                 start=root)
    except GitModelError as e:
        if not required:
            return GateOutcome(model, gaterules.NOT_RUN, f"not run: {e.message}", baseline)
        raise
    outcome.summary = gaterules.summary_line(outcome.reports, f"{baseline} ({PROD})", outcome.review)
    outcome.baseline = baseline
    return outcome
