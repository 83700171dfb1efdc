"""``git model verify``: re-run a stored eval and prove its outputs are reproduced byte for byte.

The checkpoint and eval set are taken by md5 from the local DVC cache (or
from the workspace when its bytes are the same), never by checking anything
out: the workspace is not touched. The run uses the params recorded in the
stored metrics file, so a later params.yaml change does not matter.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import dvcyaml, evalsets, gguf, gitrepo, params, project, refs, store
from gitmodel.errors import GitModelError, ModelNotFound
from gitmodel.evaluate import Inputs, _settings, parse_metrics, predict, render_outputs

SHOWN_DIFFERENCES = 10


@dataclass
class Difference:
    id: str
    stored: str | None
    reproduced: str | None


@dataclass
class VerifyReport:
    model: str
    evalset: str
    rev: str
    n: int = 0
    identical: bool = False
    problem: str | None = None                     # why the result cannot be reproduced at all (stale...)
    differences: list[Difference] = field(default_factory=list)


def _object_file(root: Path, md5: str, rel: str, what: str, hashes) -> Path:
    """A file holding exactly the bytes with this md5: the DVC cache object, else the workspace copy."""
    cached = store.cache_path(root, md5)
    if cached.is_file() and hashes.md5(cached) == md5:
        return cached
    workspace = root / rel
    if workspace.is_file() and hashes.md5(workspace) == md5:
        return workspace
    raise ModelNotFound(f"{what} {rel} with md5 {md5} is neither in the local DVC cache nor in the workspace",
                        hint="fetch it with `dvc fetch` (or `dvc pull`) and try again")


def _tracked_md5_at(root: Path, rev: str | None, rel: str) -> str | None:
    dvc = gitrepo.read_at(root, rev, rel + ".dvc")
    lock = gitrepo.read_at(root, rev, store.LOCK_FILE) if dvc is None else None
    out = store.entry_from(root, rel, None if dvc is None else dvc.decode("utf-8"),
                           None if lock is None else lock.decode("utf-8"))
    return out.md5 if out else None


def _diff(stored: bytes, reproduced: bytes) -> list[Difference]:
    import json

    def by_id(data: bytes) -> dict[str, str]:
        lines = {}
        for line in data.decode("utf-8", "replace").splitlines():
            try:
                lines[json.loads(line)["id"]] = line
            except (ValueError, KeyError, TypeError):
                lines[f"<unreadable line {len(lines) + 1}>"] = line
        return lines

    old, new = by_id(stored), by_id(reproduced)
    ids = list(old) + [i for i in new if i not in old]
    return [Difference(i, old.get(i), new.get(i)) for i in ids if old.get(i) != new.get(i)]


def verify_one(root: Path, model: str, evalset: str, rev: str | None) -> VerifyReport:
    shown_rev = rev or gitrepo.WORKSPACE
    report = VerifyReport(model, evalset, shown_rev)
    metrics_rel = dvcyaml.metrics_path(model, evalset)
    outputs_rel = dvcyaml.outputs_path(model, evalset)
    raw = gitrepo.read_at(root, rev, metrics_rel)
    stored = gitrepo.read_at(root, rev, outputs_rel)
    if raw is None or stored is None:
        missing = metrics_rel if raw is None else outputs_rel
        raise ModelNotFound(f"no stored result to verify: {missing} does not exist at {shown_rev}",
                            hint=f"run `git model eval {model} --evalset {evalset}` first")
    doc = parse_metrics(raw, f"{metrics_rel} at {shown_rev}")
    if doc["runner"]["name"] != "llama":
        raise GitModelError(f"{metrics_rel} was produced by the {doc['runner']['name']} runner; verify re-runs "
                            "checkpoints in-process with llama.cpp only")
    model_rel = doc["model"]["path"] or dvcyaml.model_path(model)
    tracked = _tracked_md5_at(root, rev, model_rel)
    if tracked != doc["model"]["md5"]:
        report.problem = (f"stale result: {metrics_rel} describes model md5 {doc['model']['md5']}, "
                          f"but {model_rel} at {shown_rev} is md5 {tracked}")
        return report
    hashes = project.hash_cache(root)
    model_file = _object_file(root, doc["model"]["md5"], model_rel, "model", hashes)
    gguf.read_info(model_file)
    evalset_file = _object_file(root, doc["evalset"]["md5"], doc["evalset"]["path"], "eval set", hashes)
    recorded = dict(params.EVAL_DEFAULTS, **doc["params"])
    inputs = Inputs(root=root, model=model, evalset=evalset, runner_kind="llama", model_file=model_file,
                    model_ref=doc["model"], evalset_file=evalset_file, evalset_ref=doc["evalset"],
                    params=doc["params"], settings=_settings(recorded))
    examples = evalsets.load(evalset_file, max_line_bytes=params.eval_params(root)["max_line_bytes"])
    predictions, _ = predict(inputs, examples)
    reproduced = render_outputs(examples, predictions)
    report.n = len(examples)
    report.identical = reproduced == stored
    if not report.identical:
        report.differences = _diff(stored, reproduced)
    return report


def verify(model: str, evalset: str | None = None, rev: str | None = None,
           start: Path | None = None) -> list[VerifyReport]:
    """Verify one eval set, or every stored result of the model at ``rev`` (default: the workspace)."""
    root = project.open_root(start)
    refs.check_name(model, "model name")
    if rev not in (None, gitrepo.WORKSPACE) and gitrepo.resolve_commit(root, rev) is None:
        raise GitModelError(f"unknown revision {rev!r}", hint="pass a commit, branch or tag, e.g. --rev HEAD~1")
    from gitmodel import known

    revs = [None] if rev in (None, gitrepo.WORKSPACE) else [rev, None]
    known.check_model(root, model, known.models(root, revs))
    if evalset is not None:
        names = [refs.check_name(evalset, "eval set name")]
        known.check_evalset(root, evalset, known.evalsets(root, revs, model))
    else:
        folder = f"{dvcyaml.METRICS_DIR}/{model}"
        names = [n[: -len(".outputs.jsonl")] for n in gitrepo.list_dir_at(root, rev, folder)
                 if n.endswith(".outputs.jsonl")]
        if not names:
            raise ModelNotFound(f"no stored results for model '{model}' at {rev or gitrepo.WORKSPACE} "
                                f"(nothing in {folder}/)", hint=f"run `git model eval {model} --evalset NAME` first")
    return [verify_one(root, model, name, rev) for name in names]
