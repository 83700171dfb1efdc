"""``git model verify``: re-run a stored eval and prove its outputs and summary are reproduced.

The checkpoint and eval set are taken by md5 from the local DVC cache (or
from the workspace when its bytes are the same), never by checking anything
out. The run uses the params recorded in the stored metrics file, so a later
params.yaml change does not matter. The outputs must be reproduced byte for
byte, and the summary's metrics recomputed from the reproduced outputs must
equal the stored ones (timings aside: they are measurements, not results).

A result of the openai runner is reproduced in-process with llama.cpp on the
tracked checkpoint: answers must be equal, and scores and confidences within
:data:`CROSS_RUNNER_TOLERANCE` (a server computes them in another order).
When that reproduces a workspace result that was unverified, the verification
is recorded in its metrics file, for release and promote to read once committed.
The workspace is not touched otherwise.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from gitmodel import dvcyaml, gitrepo, locking, metricspecs, project, provenance, refs, resultfiles, revisions
from gitmodel.revisions import Revision
from gitmodel.errors import GitModelError, ModelNotFound
from gitmodel.evaluate import rerun_stored
from gitmodel.fsutil import atomic_write

SHOWN_DIFFERENCES = 10
# A server sums log-probabilities in another order than llama.cpp in-process: 1e-3 is far above
# that noise (under 1e-4 on the demo checkpoints) and far below a changed answer.
CROSS_RUNNER_TOLERANCE = 1e-3
REPRODUCIBLE_RUNNERS = ("llama", "openai")


@dataclass
class Difference:
    id: str
    stored: str | None
    reproduced: str | None


@dataclass
class MetricDifference:
    key: str
    stored: float | None           # None: the key is missing on that side
    reproduced: float | None


@dataclass
class VerifyReport:
    model: str
    evalset: str
    rev: str
    n: int = 0
    identical: bool = False
    problem: str | None = None                     # why the result cannot be reproduced at all (stale...)
    differences: list[Difference] = field(default_factory=list)
    metric_differences: list[MetricDifference] = field(default_factory=list)
    params: dict = field(default_factory=dict)     # the recorded params the run used
    runner: str = "llama"                          # the runner that produced the stored result
    tolerance: float = 0.0                         # on scores and confidences (a result of another runner)
    recorded: str | None = None                    # the metrics file the verification was written into
    stale: list = field(default_factory=list)      # provenance.StaleReason: why it was not re-run
    # (stored, reproducing) llama.cpp builds when they differ: outputs may then differ in the last float bits
    other_build: tuple[str | None, str | None] | None = None

    def to_dict(self) -> dict:
        return {"model": self.model, "evalset": self.evalset, "rev": self.rev, "n": self.n,
                "identical": self.identical, "problem": self.problem, "params": self.params,
                "runner": self.runner, "tolerance": self.tolerance, "recorded": self.recorded,
                "stale": [r.to_dict() for r in self.stale],
                "other_build": None if self.other_build is None else
                {"stored": self.other_build[0], "reproduced": self.other_build[1]},
                "differences": [vars(d) for d in self.differences],
                "metric_differences": [vars(d) for d in self.metric_differences]}




def _same(a, b, tolerance: float) -> bool:
    """Equal, numbers within ``tolerance`` (recursively through dicts)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], tolerance) for k in a)
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return abs(a - b) <= tolerance
    return a == b


def _diff(stored: bytes, reproduced: bytes, tolerance: float = 0.0) -> list[Difference]:
    def by_id(data: bytes) -> dict[str, str]:
        lines = {}
        for line in data.decode("utf-8", "replace").splitlines():
            try:
                lines[json.loads(line)["id"]] = line
            except (ValueError, KeyError, TypeError):
                lines[f"<unreadable line {len(lines) + 1}>"] = line
        return lines

    def differ(a: str | None, b: str | None) -> bool:
        if a == b:
            return False
        if a is None or b is None or not tolerance:
            return True
        try:
            return not _same(json.loads(a), json.loads(b), tolerance)
        except ValueError:
            return True

    old, new = by_id(stored), by_id(reproduced)
    ids = list(old) + [i for i in new if i not in old]
    return [Difference(i, old.get(i), new.get(i)) for i in ids if differ(old.get(i), new.get(i))]


def _is_timing(key: str) -> bool:
    try:
        return metricspecs.spec(key).kind == metricspecs.TIMING
    except KeyError:
        return False


def metric_differences(stored: dict, recomputed: dict, tolerance: float = 0.0) -> list[MetricDifference]:
    """Every non-timing metric whose stored value is not the one recomputed from the outputs.

    ``tolerance`` applies to the confidence metrics only: the answers behind every other metric
    must be equal whatever the runner.
    """
    old, new = dict(metricspecs.iter_leaves(stored)), dict(metricspecs.iter_leaves(recomputed))
    found = []
    for key in dict.fromkeys([*old, *new]):
        if _is_timing(key):
            continue
        a, b = old.get(key), new.get(key)
        allowed = tolerance if key.startswith("confidence.") else 0.0
        if a is None or b is None or not math.isclose(a, b, rel_tol=0.0, abs_tol=allowed):
            found.append(MetricDifference(key, a, b))
    return found


def verify_one(root: Path, model: str, evalset: str, rev: Revision) -> VerifyReport:
    shown_rev = rev.label
    report = VerifyReport(model, evalset, shown_rev)
    metrics_rel = dvcyaml.metrics_path(model, evalset)
    outputs_rel = dvcyaml.outputs_path(model, evalset)
    raw = gitrepo.read_at(root, rev.commit, metrics_rel)
    stored = gitrepo.read_at(root, rev.commit, outputs_rel)
    if raw is None or stored is None:
        missing = metrics_rel if raw is None else outputs_rel
        raise ModelNotFound(f"no stored result to verify: {missing} does not exist at {shown_rev}",
                            hint=f"run `git model eval {model} --evalset {evalset}` first")
    doc = resultfiles.parse_metrics(raw, f"{metrics_rel} at {shown_rev}")
    report.params = dict(doc["params"])
    report.runner = doc["runner"]["name"]
    if report.runner not in REPRODUCIBLE_RUNNERS:
        raise GitModelError(f"{metrics_rel} was produced by the {report.runner} runner; verify re-runs "
                            "checkpoints in-process with llama.cpp only",
                            hint="verify results of the llama or openai runner")
    model_rel = doc["model"]["path"] or dvcyaml.model_path(model)
    stale = provenance.stale_at(root, rev, doc)
    if stale:
        report.problem = f"stale result: {provenance.describe(metrics_rel, shown_rev, stale)}"
        report.stale = stale
        return report
    run = rerun_stored(root, doc, dict(doc["model"], path=model_rel))
    reproduced = run.outputs
    report.n = run.n
    stored_build, build = doc["runner"].get("llama_cpp_version"), run.runner_info.get("llama_cpp_version")
    if report.runner == "llama" and stored_build != build:
        report.other_build = (stored_build, build)
    report.tolerance = 0.0 if report.runner == "llama" else CROSS_RUNNER_TOLERANCE
    if reproduced != stored:
        report.differences = _diff(stored, reproduced, report.tolerance)
    report.metric_differences = metric_differences(doc["metrics"], run.doc["metrics"], report.tolerance)
    report.identical = not report.differences and not report.metric_differences
    if report.identical and rev.is_workspace and provenance.is_unverified(doc):
        report.recorded = _record_reproduced(root, metrics_rel, raw, doc, run.runner_info)
    return report


def _record_reproduced(root: Path, metrics_rel: str, raw: bytes, doc: dict, info: dict) -> str:
    """Write into the workspace metrics file that verify reproduced it (only if it did not change meanwhile)."""
    when = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    doc = dict(doc, verification={
        "status": provenance.REPRODUCED,
        "detail": (f"git model verify reproduced the outputs and summary in-process with llama.cpp "
                   f"{info.get('llama_cpp_version')} from the DVC cache object of md5 {doc['model']['md5']} "
                   f"at {when}"),
    })
    resultfiles.validate_metrics(doc, metrics_rel)
    with locking.repository_lock(root / project.STATE_DIR):
        path = root / metrics_rel
        if not path.is_file() or path.read_bytes() != raw:
            raise GitModelError(f"{metrics_rel} changed while it was verified; the verification was not recorded",
                                hint="run `git model verify` again")
        atomic_write(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return metrics_rel


def verify(model: str, evalset: str | None = None, rev: str | None = None,
           start: Path | None = None) -> list[VerifyReport]:
    """Verify one eval set, or every stored result of the model at ``rev`` (default: the workspace)."""
    root = project.open_root(start)
    refs.check_name(model, "model name")
    resolved = revisions.resolve(root, rev)
    if resolved.model is not None and resolved.model != model:
        raise GitModelError(f"--rev {rev} names model '{resolved.model}', not '{model}'",
                            hint=f"verify {resolved.model}, or name a revision of {model}, e.g. {model}@latest")
    from gitmodel import known

    revs = [None] if resolved.is_workspace else [resolved.commit, None]
    known.check_model(root, model, known.models(root, revs))
    if evalset is not None:
        names = [refs.check_name(evalset, "eval set name")]
        known.check_evalset(root, evalset, known.evalsets(root, revs, model))
    else:
        folder = f"{dvcyaml.METRICS_DIR}/{model}"
        names = [n[: -len(".outputs.jsonl")] for n in gitrepo.list_dir_at(root, resolved.commit, folder)
                 if n.endswith(".outputs.jsonl")]
        if not names:
            raise ModelNotFound(f"no stored results for model '{model}' at {resolved.label} "
                                f"(nothing in {folder}/)", hint=f"run `git model eval {model} --evalset NAME` first")
    return [verify_one(root, model, name, resolved) for name in names]
