"""``git model gate``: a candidate against the baseline (normally ``MODEL#prod``) on the identical eval set.

Order of work: resolve both revisions; read both stored results from git
objects (the workspace for a workspace candidate); refuse stale candidate
metrics; check, for every eval set, that the two results come from the same
eval set md5 and eval params, and refuse before any compute when they do not
and ``--rerun`` is not given. With ``--rerun`` (or when asked to), the
BASELINE checkpoint itself is evaluated on the candidate's eval set with the
candidate's params: the weights are the object whose md5 the baseline
revision's ``.dvc`` file (or ``dvc.lock``) names, read from the DVC cache (or
from the workspace when its bytes are the same), never checked out; nothing
is written to ``metrics/`` or anywhere else in the workspace. Then
:func:`compare.gate` compares every metric under params.yaml ``gate:``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gitmodel import compare, dvcyaml, project, provenance, refs, revisions, store
from gitmodel import registry as registry_mod
from gitmodel.revisions import Revision
from gitmodel.errors import GitModelError, ModelNotFound, StaleArtifact

PROD = "prod"


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


@dataclass
class GateResult:
    """The gate of one eval set."""

    model: str
    evalset: str
    baseline: str                    # e.g. "sentiment#prod (sentiment@v1.0.0)"
    candidate: str                   # e.g. "workspace" or "sentiment@v2.0.0"
    report: compare.GateReport
    baseline_doc: dict               # the baseline's metrics document (stored, or computed by --rerun)
    candidate_doc: dict
    rerun: bool = False              # the baseline was evaluated here, not read from its stored metrics
    rerun_reason: str | None = None  # why: "--rerun", or what made the stored metrics unusable
    policy: str = "params.yaml"      # where tolerances and accepted tradeoffs were read

    @property
    def passed(self) -> bool:
        return self.report.passed

    @property
    def rows(self) -> list[compare.GateRow]:
        return self.report.rows

    @property
    def failures(self) -> list[str]:
        """The metrics that failed."""
        return [r.metric for r in self.report.failures]

    def to_dict(self) -> dict:
        return {"model": self.model, "evalset": self.evalset, "baseline": self.baseline,
                "candidate": self.candidate, "passed": self.passed, "rerun": self.rerun,
                "rerun_reason": self.rerun_reason, "policy": self.policy,
                "baseline_model_md5": (self.baseline_doc.get("model") or {}).get("md5"),
                "candidate_model_md5": (self.candidate_doc.get("model") or {}).get("md5"),
                "evalset_md5": (self.candidate_doc.get("evalset") or {}).get("md5"),
                **self.report.to_dict()}


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


def _stale(root: Path, rev: Revision, result: registry_mod.Result) -> str | None:
    """Why a stored result does not describe the checkpoint (or eval set) tracked at its revision, or None."""
    reasons = provenance.stale_at(root, rev, result.doc)
    return provenance.describe(result.path, rev.label, reasons) if reasons else None


def _candidate_results(root: Path, model: str, rev: Revision,
                       evalset: str | None) -> list[registry_mod.Result]:
    results = registry_mod.results_at(root, rev, model, evalset, with_outputs=True)
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
    from gitmodel import evalsets, gguf, params
    from gitmodel.evaluate import Inputs, _settings, build_doc, predict, render_outputs
    from gitmodel.verify import _object_file

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
    hashes = project.hash_cache(root)
    model_file = _object_file(root, md5, model_rel, f"baseline model ({rev.label})", hashes)
    gguf.read_info(model_file)   # our bounds-checked reader first, as for every eval
    evalset_ref = candidate_doc["evalset"]
    evalset_file = _object_file(root, evalset_ref["md5"], evalset_ref["path"], "eval set", hashes)
    settings = _settings(dict(params.EVAL_DEFAULTS, **recorded))
    inputs = Inputs(root=root, model=model, evalset=evalset_ref["name"], runner_kind="llama",
                    model_file=model_file, model_ref={"name": model, "path": model_rel, "md5": md5},
                    evalset_file=evalset_file, evalset_ref=dict(evalset_ref), params=dict(recorded),
                    settings=settings)
    examples = evalsets.load(evalset_file, max_line_bytes=params.eval_params(root)["max_line_bytes"])
    predictions, info = predict(inputs, examples, progress_factory)
    doc = build_doc(inputs, examples, predictions, info, recorded.get("refusal_patterns") or [])
    return doc, render_outputs(examples, predictions)


def run_gate(model: str, baseline: str | None = None, candidate: str = revisions.WORKSPACE,
             evalset: str | None = None, rerun: bool = False, start: Path | None = None,
             progress_factory: Callable | None = None) -> list[GateResult]:
    """Gate ``candidate`` against ``baseline`` (default ``MODEL#prod``), one result per eval set.

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
    stored = {r.evalset: r for r in registry_mod.results_at(root, base_rev, model, evalset, with_outputs=True)}

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
                same, reason = compare.comparable(base.doc, cand.doc, names=("baseline", "candidate"))
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
            psi = compare.output_psi(compare.parse_outputs(base_outputs, f"baseline outputs ({base_rev.label})"),
                                     compare.parse_outputs(cand.outputs, f"candidate outputs ({cand_rev.label})"))
        compared.append((cand, base_doc, psi, why))
    # every tolerance and tradeoff must name a metric of these results: a misspelt one is an error
    policy.check_names(compare.policy_keys([(base_doc, cand.doc, psi) for cand, base_doc, psi, _ in compared]))
    results = []
    for cand, base_doc, psi, why in compared:
        report = compare.gate(base_doc, cand.doc, policy=policy, output_psi=psi)
        results.append(GateResult(model, cand.evalset, base_rev.label, cand_rev.label, report, base_doc, cand.doc,
                                  rerun=bool(why), rerun_reason=why, policy=f"{params.PARAMS_FILE} (workspace)"))
    return results


def trailer(results: list[GateResult], baseline: str) -> str:
    """The ``Gate:`` trailer of a promotion tag: the verdict against ``baseline`` and, for each eval set
    that failed (or passed only through accepted tradeoffs), that eval set's own metrics, e.g.
    ``failed against v1.0.0 (prod): gen: output_tokens.mean, output_chars.mean; sem: accuracy``.
    Eval sets that passed outright are named in the passing form only."""
    if not results:
        return f"not run against {baseline} (prod): no results to gate"
    passed = all(r.passed for r in results)
    if passed:
        text = f"passed against {baseline} (prod) on {', '.join(r.evalset for r in results)}"
    else:
        failing = [f"{r.evalset}: {', '.join(r.failures)}" for r in results if not r.passed]
        text = f"failed against {baseline} (prod): {'; '.join(failing)}"
    accepted = [f"{r.evalset}: {', '.join(row.metric for row in r.report.accepted)}"
                for r in results if r.report.accepted]
    if accepted:
        text += f" (accepted tradeoffs: {'; '.join(accepted)})"
    return text
