"""One eval run: one model on one eval set, into
``metrics/<model>/<evalset>.json`` (summary, schema-checked) and
``metrics/<model>/<evalset>.outputs.jsonl`` (one line per example, byte-identical
across runs of the same inputs: the reproducibility record).

Order of work: resolve and check every input (names, tracked md5s, GGUF
header, eval set lines, params) before a runner starts; run; compute; validate;
then write both files atomically under the repository lock. Ctrl-C or a crash
before the final rename leaves the previous metrics intact.

:func:`rerun_stored` re-runs a stored eval from the DVC cache (``git model verify``, and the
gate's re-run of a baseline): the recorded params, the checkpoint by md5, nothing written.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from gitmodel import fsutil, interrupts
from gitmodel import (dvcyaml, evalprep, evalsets, gguf, locking, metrics, params, project, provenance, refs,
                      resultfiles, store)
from gitmodel.errors import (EvalSetNotFound, GitModelError, ModelNotFound, RunnerError,
                             StaleArtifact, UnpairedEval)
from gitmodel.runners import make_runner
from gitmodel.runners.base import Example, Prediction, RunSettings

ProgressFactory = Callable[[int, str], Callable[[int], None]]


@dataclass
class Inputs:
    """Everything an eval run depends on, resolved and checked."""

    root: Path
    model: str
    evalset: str
    runner_kind: str
    model_file: Path | None       # the checkpoint llama.cpp loads (None for openai/python)
    model_ref: dict               # {"name", "path", "md5"} for the metrics file
    evalset_file: Path
    evalset_ref: dict
    params: dict                  # eval params recorded with the result
    settings: RunSettings
    url: str | None = None
    entry: str | None = None
    openai: dict = field(default_factory=dict)
    max_line_bytes: int = params.EVAL_DEFAULTS["max_line_bytes"]
    prep: evalprep.Preparation | None = None     # prompts and scorers (None: the input as is, exact match)


@dataclass
class EvalResult:
    model: str
    evalset: str
    metrics_path: str
    outputs_path: str
    cached: bool
    doc: dict
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)   # for the user: e.g. inputs past the training context

    def to_dict(self) -> dict:
        return {"model": self.model, "evalset": self.evalset, "cached": self.cached,
                "metrics_path": self.metrics_path, "outputs_path": self.outputs_path,
                "seconds": round(self.seconds, 3), "warnings": self.warnings, **self.doc}


def recorded_params(p: dict) -> dict:
    """The params recorded with a result (and compared to call it current): every eval param that can
    change what a run computes, with the openai runner's own under ``openai`` for its results only."""
    recorded = {k: p[k] for k in params.RESULT_KEYS}
    prompt_md5 = evalprep.params_md5(p)
    if prompt_md5 is not None:
        recorded["prompt_md5"] = prompt_md5
    if p["runner"] == "openai":
        o = dict(params.EVAL_DEFAULTS["openai"], **(p.get("openai") or {}))
        recorded["openai"] = {k: o[k] for k in params.OPENAI_RESULT_KEYS}
    return recorded


def _checked_tracked_file(root: Path, rel: str, kind: str, name: str, hashes) -> tuple[Path, str]:
    """(path, md5) of a DVC-tracked workspace file whose bytes are the tracked ones."""
    path = root / rel
    entry = store.tracked(root, path)
    if entry is None or not entry.md5:
        from gitmodel import known

        add = "git model add" if kind == "model" else "git model evalset add"
        error = ModelNotFound if kind == "model" else EvalSetNotFound
        names = known.models(root) if kind == "model" else known.evalsets(root)
        raise error(f"{kind} '{name}' is not tracked: no {rel}.dvc and no dvc.lock entry for {rel}"
                    f"{known.suggestion(name, names)}", hint=f"track it with `{add} {rel}`")
    if not path.is_file():
        error = ModelNotFound if kind == "model" else EvalSetNotFound
        raise error(f"{rel} is tracked (md5 {entry.md5}) but not in the workspace",
                    hint=f"get it with `dvc checkout {entry.source.relative_to(root)}` (from the local cache) "
                         f"or `dvc pull {entry.source.relative_to(root)}` (from the remote)")
    actual = hashes.md5(path)
    if actual != entry.md5:
        what = "the workspace model differs" if kind == "model" else "the eval set changed since it was tracked"
        again = "git model add" if kind == "model" else "git model evalset add"
        raise StaleArtifact(f"{rel}: {what} from what DVC tracks (workspace md5 {actual}, tracked {entry.md5})",
                            hint=f"track the new bytes with `{again} {rel}`, or restore the tracked ones "
                                 f"with `dvc checkout {entry.source.relative_to(root)}`")
    return path, entry.md5


def _check_paired(root: Path, model: str, evalset: str) -> None:
    """An eval of a pair dvc.yaml does not declare would write metrics no command reads as results
    (orphaned at once): refused, with the way to declare it."""
    from gitmodel import pairs

    found = pairs.workspace(root)
    declared = found.pairs
    if declared is None or (model, evalset) in declared or model not in found.models:
        return      # no pairing here, or a model served or imported, not tracked: nothing to pair
    own = pairs.evalsets_of(declared, model)
    raise UnpairedEval(f"{model} is not evaluated on {evalset}: dvc.yaml does not declare the pair "
                       f"({model}'s eval sets: {', '.join(own) or 'none'})",
                       hint=f"pair them with `git model evalset add {dvcyaml.evalset_path(evalset)} --for {model}`, "
                            "then run `dvc repro` (or this command again)")


def resolve_inputs(model: str, evalset: str, *, runner: str | None = None, url: str | None = None,
                   entry: str | None = None, start: Path | None = None) -> Inputs:
    root = project.open_root(start)
    refs.check_name(model, "model name")
    refs.check_name(evalset, "eval set name")
    p = params.eval_params(root, evalset, model=model)
    kind = runner or p["runner"]
    p = dict(p, runner=kind)
    hashes = project.hash_cache(root)
    evalset_rel = dvcyaml.evalset_path(evalset)
    evalset_file, evalset_md5 = _checked_tracked_file(root, evalset_rel, "eval set", evalset, hashes)
    model_rel = dvcyaml.model_path(model)
    model_file = None
    if kind == "llama":
        model_file, model_md5 = _checked_tracked_file(root, model_rel, "model", model, hashes)
        gguf.read_info(model_file)  # our bounds-checked reader, before llama.cpp sees the file
        model_ref = {"name": model, "path": model_rel, "md5": model_md5}
    elif kind == "python":
        if not entry:
            raise RunnerError("the python runner needs an entry point: pass --entry module:function",
                              hint="e.g. --entry mypkg.fraud:predict")
        model_ref = {"name": model, "path": None, "md5": None}
        module_file = _module_file(root, entry)
        if module_file is not None:
            # the code is the model: its md5 lets a cached result be reused only for the same code
            model_ref = {"name": model, "path": module_file.relative_to(root).as_posix(),
                         "md5": hashes.md5(module_file)}
    else:
        # a served model: its identity is whatever the tracked file says, when there is one
        tracked = store.tracked(root, root / model_rel)
        model_ref = {"name": model, "path": model_rel if tracked else None, "md5": tracked.md5 if tracked else None}
    _check_paired(root, model, evalset)
    prep = evalprep.resolve(root, p, runner=kind, model_file=model_file, model_rel=model_ref["path"],
                            max_line_bytes=p["max_line_bytes"], where=f"{root / params.PARAMS_FILE}")
    return Inputs(root=root, model=model, evalset=evalset, runner_kind=kind, model_file=model_file,
                  model_ref=model_ref, evalset_file=evalset_file,
                  evalset_ref={"name": evalset, "path": evalset_rel, "md5": evalset_md5},
                  params=recorded_params(p), settings=RunSettings.from_params(p, prep.special), url=url,
                  entry=entry, openai=dict(p.get("openai") or {}), max_line_bytes=p["max_line_bytes"], prep=prep)


def _module_file(root: Path, entry: str) -> Path | None:
    module = entry.partition(":")[0]
    parts = module.split(".")
    for candidate in (root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def _is_current(doc: dict | None, inputs: Inputs, identity: dict | None = None) -> bool:
    """Whether the stored result was computed from these inputs, so a re-run would give it again.

    A served model is current only when the server proves what it serves (an md5) and it is the same
    server, model and md5 as recorded: a restart on other weights at the same URL is a new run.
    """
    if doc is None or inputs.model_ref["md5"] is None:
        return False  # no identity to compare: a model without a tracked file is always re-run
    if provenance.staleness(doc, model_md5=inputs.model_ref["md5"], evalset_md5=inputs.evalset_ref["md5"],
                            params=inputs.params, concurrency=_concurrency(inputs)):
        return False
    runner = doc["runner"]
    if runner["name"] != inputs.runner_kind:
        return False
    if doc.get("prompting", {}) != (inputs.prep.record if inputs.prep else {}):
        return False   # a few-shot file, chat template or schema file changed under the same params
    if inputs.runner_kind == "openai":
        identity = identity or {}
        return (identity.get("served_md5") is not None and runner.get("url") == inputs.url.rstrip("/")
                and runner.get("served_md5") == identity["served_md5"]
                and runner.get("served_model") == identity.get("served_model"))
    return True


def _concurrency(inputs: Inputs) -> int | None:
    return int(inputs.openai.get("concurrency", 4)) if inputs.runner_kind == "openai" else None


def _runner_for(inputs: Inputs, model_file: Path | None = None):
    if inputs.runner_kind == "openai":
        o = inputs.openai
        options = {"concurrency": int(o.get("concurrency", 4)), "timeout": float(o.get("timeout", 30)),
                   "retries": int(o.get("retries", 3)), "api_key_env": str(o.get("api_key_env", "OPENAI_API_KEY")),
                   "model": o.get("model"), "scoring": o.get("scoring") or "echo",
                   "top_logprobs": int(o.get("top_logprobs") or params.EVAL_DEFAULTS["openai"]["top_logprobs"])}
        return make_runner("openai", settings=inputs.settings, url=inputs.url, **options)
    return make_runner(inputs.runner_kind, settings=inputs.settings, model_path=model_file or inputs.model_file,
                       entry=inputs.entry, root=inputs.root)


def predict(inputs: Inputs, examples: list[Example], progress_factory: ProgressFactory | None = None,
            model_file: Path | None = None, runner=None,
            warnings: list[str] | None = None) -> tuple[list[Prediction], dict]:
    """The runner's predictions and info; what it warns about is appended to ``warnings``."""
    # A model load runs native code that calls back into Python (llama.cpp's
    # logging): Ctrl-C waits until the load returns, then stops the run.
    with interrupts.deferred(raise_on_exit=False) as interrupt:
        runner = runner or _runner_for(inputs, model_file)
    try:
        interrupt.check()
        update = progress_factory(len(examples), f"{inputs.model} on {inputs.evalset}") if progress_factory else None
        predictions = runner.predict(examples, update)
        info = runner.info()
        if warnings is not None and hasattr(runner, "warnings"):
            warnings.extend(runner.warnings())
    finally:
        runner.close()
    if len(predictions) != len(examples):
        got, want = len(predictions), len(examples)
        raise RunnerError(f"runner {inputs.runner_kind} returned {got} prediction{'s' if got != 1 else ''} "
                          f"for {want} example{'s' if want != 1 else ''}",
                          hint="a runner returns exactly one prediction per example, in order")
    _check_finite(examples, predictions, inputs.runner_kind)
    return predictions, info


def _check_finite(examples: Sequence[Example], predictions: Sequence[Prediction], runner: str) -> None:
    """A NaN score is the model's fault, named here, not a broken metrics file later."""
    for example, prediction in zip(examples, predictions):
        values = [prediction.confidence, *(prediction.scores or {}).values()]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            where = f" (line {example.line})" if example.line else ""
            raise RunnerError(f"runner {runner}: the model produced NaN or infinite scores for example "
                              f"{example.id!r}{where}",
                              hint="check the model: corrupted weights give NaN scores")


def verification_for(inputs: Inputs, runner_info: dict) -> dict:
    """Whether the producer of a run is tied to the tracked md5 (see :mod:`gitmodel.provenance`)."""
    if inputs.runner_kind == "openai":
        return provenance.served_verification(inputs.model_ref["md5"], runner_info.get("served_md5"),
                                              str(runner_info.get("url")), runner_info.get("served_model"))
    if inputs.model_ref["md5"] is None:
        return {"status": provenance.UNVERIFIED,
                "detail": f"the {inputs.runner_kind} runner ran code that is not a file of the repository"}
    if inputs.runner_kind == "python":
        return {"status": provenance.TIED, "detail": f"the python runner imported {inputs.model_ref['path']}"}
    return {"status": provenance.TIED, "detail": f"llama.cpp loaded {inputs.model_ref['path']} after its md5 "
                                                 "was checked"}


def timing_conditions_for(inputs: Inputs) -> dict:
    if inputs.runner_kind == "openai":
        return provenance.timing_conditions("openai", _concurrency(inputs), None, url=inputs.url)
    n_threads = inputs.settings.n_threads if inputs.runner_kind == "llama" else None
    return provenance.timing_conditions(inputs.runner_kind, 1, n_threads)


def build_doc(inputs: Inputs, examples, predictions, runner_info: dict, refusal_patterns,
              scoring: dict | None = None) -> dict:
    runner = {"name": inputs.runner_kind, "version": str(runner_info.get("version", "unknown")),
              "llama_cpp_version": runner_info.get("llama_cpp_version")}
    for key, value in runner_info.items():
        if key not in runner and key != "name":
            runner[key] = value
    doc = {
        "schema_version": resultfiles.SCHEMA_VERSION,
        "model": inputs.model_ref,
        "evalset": inputs.evalset_ref,
        "params": inputs.params,
        "runner": runner,
        "verification": verification_for(inputs, runner_info),
        "timing_conditions": timing_conditions_for(inputs),
    }
    if inputs.prep is not None and inputs.prep.record:
        doc["prompting"] = inputs.prep.record
    if scoring:
        doc["scoring"] = scoring
    doc["metrics"] = metrics.compute(examples, predictions, (*metrics.DEFAULT_REFUSAL_PATTERNS, *refusal_patterns),
                                     slices=inputs.params.get("slices") or (),
                                     min_slice=int(inputs.params.get("min_slice") or params.EVAL_DEFAULTS["min_slice"]))
    return doc


def _check_served(inputs: Inputs, identity: dict) -> None:
    """Refuse a server that says it serves other weights than the tracked ones: its numbers are not theirs."""
    served, tracked = identity.get("served_md5"), inputs.model_ref["md5"]
    if served is not None and tracked is not None and served != tracked:
        raise RunnerError(f"{inputs.url} serves md5 {served}, but {inputs.model_ref['path']} tracks md5 {tracked}: "
                          f"its results would be credited to weights that did not produce them",
                          hint=f"serve {inputs.model_ref['path']} (md5 {tracked}), or track what the server "
                               f"serves with `git model add`")


def run_eval(model: str, evalset: str, *, runner: str | None = None, url: str | None = None,
             entry: str | None = None, force: bool = False, wait: float = 0.0,
             progress_factory: ProgressFactory | None = None, on_wait=None,
             start: Path | None = None) -> EvalResult:
    inputs = resolve_inputs(model, evalset, runner=runner, url=url, entry=entry, start=start)
    root = inputs.root
    metrics_rel = dvcyaml.metrics_path(model, evalset)
    outputs_rel = dvcyaml.outputs_path(model, evalset)
    with locking.repository_lock(root / project.STATE_DIR, wait=wait, on_wait=on_wait):
        previous = None
        if not force:
            try:
                previous = resultfiles.read_metrics(root / metrics_rel, metrics_rel)
            except GitModelError:
                previous = None  # a damaged result is simply recomputed
        served = identity = None
        if inputs.runner_kind == "openai":
            # who answers at the URL decides whether the stored result is still its result
            served = _runner_for(inputs)
            identity = served.identify()
            _check_served(inputs, identity)
        if not force and _is_current(previous, inputs, identity) and (root / outputs_rel).is_file():
            return EvalResult(model, evalset, metrics_rel, outputs_rel, cached=True, doc=previous)
        started = time.perf_counter()
        examples = evalsets.load(inputs.evalset_file, max_line_bytes=inputs.max_line_bytes)
        examples, scoring = inputs.prep.apply(examples, inputs.evalset_ref["path"])
        warnings: list[str] = evalprep.slice_warnings(examples, inputs.params["slices"])
        predictions, info = predict(inputs, examples, progress_factory, runner=served, warnings=warnings)
        if identity is not None:
            _check_served(inputs, info)
        judged = evalprep.score(scoring, examples, predictions)
        doc = build_doc(inputs, examples, predictions, info, inputs.params["refusal_patterns"], judged)
        resultfiles.validate_metrics(doc, metrics_rel)
        outputs = resultfiles.render_outputs(examples, predictions, source=outputs_rel)
        summary = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        # Both files or neither: outputs first, so that a crash (not a Ctrl-C,
        # which replace_all undoes) between the renames leaves a summary whose
        # provenance no longer matches, which the next eval recomputes.
        with interrupts.deferred(raise_on_exit=False, last_step=True) as interrupt:
            fsutil.replace_all({root / outputs_rel: outputs, root / metrics_rel: summary.encode("utf-8")}, interrupt)
        seconds = time.perf_counter() - started
    return EvalResult(model, evalset, metrics_rel, outputs_rel, cached=False, doc=doc, seconds=seconds,
                      warnings=warnings)


@dataclass
class Rerun:
    """A stored eval run again: what it computed, nothing of it written."""

    inputs: Inputs
    examples: list[Example]
    predictions: list[Prediction]
    runner_info: dict
    doc: dict                     # the metrics document of this run
    outputs: bytes                # its outputs.jsonl

    @property
    def n(self) -> int:
        return len(self.examples)


def object_file(root: Path, md5: str, rel: str, what: str, hashes=None) -> Path:
    """A file holding exactly the bytes with this md5: the DVC cache object, else the workspace copy of
    ``rel`` when its bytes are the same. Raises ModelNotFound when neither holds them."""
    hashes = hashes or project.hash_cache(root)
    cached = store.cache_path(root, md5)
    if cached.is_file() and hashes.md5(cached) == md5:
        return cached
    workspace = root / rel
    if workspace.is_file() and hashes.md5(workspace) == md5:
        return workspace
    raise ModelNotFound(f"{what} {rel} with md5 {md5} is neither in the local DVC cache nor in the workspace",
                        hint="fetch it with `dvc fetch` (or `dvc pull`) and try again")


def rerun_stored(root: Path, recorded: dict, model_ref: dict, *, model_what: str = "model",
                 progress_factory: ProgressFactory | None = None, only: set[str] | None = None) -> Rerun:
    """Evaluate the checkpoint of ``model_ref`` (``{"name", "path", "md5"}``) in-process with llama.cpp,
    on the eval set and with the params that the metrics document ``recorded`` records.

    Both files are taken by md5 from the local DVC cache (or from the workspace when its bytes are the
    same), never checked out; the params are the recorded ones, so a later params.yaml change does not
    matter. Nothing is written. ``model_what`` names the checkpoint in errors ("baseline model
    (chat#prod)"). Raises ModelNotFound for an md5 in neither place, and the GGUF reader's errors before
    llama.cpp sees the file. ``only``: run the examples with these ids alone (``bisect`` on one example).
    """
    hashes = project.hash_cache(root)
    model_file = object_file(root, model_ref["md5"], model_ref["path"], model_what, hashes)
    gguf.read_info(model_file)   # our bounds-checked reader first, as for every eval
    evalset_ref = recorded["evalset"]
    evalset_file = object_file(root, evalset_ref["md5"], evalset_ref["path"], "eval set", hashes)
    run_params = dict(params.EVAL_DEFAULTS, **recorded["params"])
    max_line_bytes = params.eval_params(root)["max_line_bytes"]
    prep = evalprep.resolve(root, run_params, runner="llama", model_file=model_file, model_rel=model_ref["path"],
                            max_line_bytes=max_line_bytes, where=f"{evalset_ref['path']} as recorded")
    inputs = Inputs(root=root, model=model_ref["name"], evalset=evalset_ref["name"], runner_kind="llama",
                    model_file=model_file, model_ref=dict(model_ref), evalset_file=evalset_file,
                    evalset_ref=dict(evalset_ref), params=dict(recorded["params"]),
                    settings=RunSettings.from_params(run_params, prep.special), prep=prep)
    examples = evalsets.load(evalset_file, max_line_bytes=max_line_bytes)
    if only is not None:
        examples = [e for e in examples if e.id in only]
    examples, scoring = prep.apply(examples, evalset_ref["path"])
    predictions, info = predict(inputs, examples, progress_factory)
    judged = evalprep.score(scoring, examples, predictions)
    doc = build_doc(inputs, examples, predictions, info, run_params.get("refusal_patterns") or [], judged)
    return Rerun(inputs, examples, predictions, info, doc, resultfiles.render_outputs(examples, predictions))
