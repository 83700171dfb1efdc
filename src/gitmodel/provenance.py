"""What produced a stored result, whether it is tied to the tracked checkpoint, and whether it is stale.

Every "do these metrics still describe this checkpoint, eval set and params?"
question is answered by :func:`stale_at` (a result stored at a revision) on top of
:func:`staleness` (pure), so that ``eval`` (its cache), ``status``, ``log``, ``show``,
``diff``, ``gate``, ``release`` and ``verify`` give the same answer for the same reason,
as typed :class:`StaleReason` values the CLI only renders.

A result is *tied* to the tracked md5 when the runner that produced it was
proven to run those bytes: llama.cpp loaded the checked file, the python
runner imported the module whose md5 is recorded, or a server reported the
md5 it serves. Otherwise it is *unverified* until ``git model verify``
reproduces it in-process from the DVC cache (status ``reproduced``).
"""
from __future__ import annotations

import json
import os
import platform
import socket
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from gitmodel.errors import UnverifiedResult

TIED, UNVERIFIED, REPRODUCED = "tied", "unverified", "reproduced"
WORKSPACE = "workspace"   # gitrepo.WORKSPACE, not imported: this module stays light for `diff`


# ----------------------------------------------------------------------------- staleness


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def param_changes(recorded: Mapping, current: Mapping, defaults: Mapping | None = None,
                  prefix: str = "eval.") -> list[str]:
    """``eval.n_threads: recorded 1, now 2`` for every key whose value differs.

    A key the result does not record was written by an older git-model,
    before that key was recorded: it stands for its default.
    """
    defaults = defaults or {}
    changes = []
    for key in dict.fromkeys([*recorded, *current]):
        old = recorded.get(key, defaults.get(key))
        new = current.get(key, defaults.get(key))
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            changes += param_changes(old, new, defaults.get(key) if isinstance(defaults.get(key), Mapping) else {},
                                     f"{prefix}{key}.")
        elif old != new:
            changes.append(f"{prefix}{key}: recorded {_shown(old)}, now {_shown(new)}")
    return changes


MODEL, EVALSET, PARAMS, CONCURRENCY = "model", "evalset", "params", "concurrency"


@dataclass(frozen=True)
class StaleReason:
    """One reason a stored result does not describe what it is stored beside."""

    kind: str                  # MODEL | EVALSET | PARAMS | CONCURRENCY
    recorded: Any              # what the result measured (an md5, a concurrency) or recorded (params)
    current: Any               # what the revision tracks / params.yaml says now (None: not tracked)
    path: str | None = None    # the tracked file (MODEL, EVALSET)
    where: str = WORKSPACE     # the revision's label
    changes: tuple[str, ...] = ()   # PARAMS: ``eval.seed: recorded 0, now 3`` for each change

    def __str__(self) -> str:
        if self.kind == PARAMS:
            return "eval params changed since: " + "; ".join(self.changes)
        if self.kind == CONCURRENCY:
            return f"timings were measured at eval.openai.concurrency {self.recorded}, now {self.current}"
        what = "model" if self.kind == MODEL else "eval set"
        return f"it measured {what} md5 {self.recorded}, but {self.path} at {self.where} is md5 {self.current}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "path": self.path, "recorded": self.recorded, "current": self.current,
                "changes": list(self.changes), "text": str(self)}


def describe(path: str, where: str, reasons: list[StaleReason]) -> str:
    """``metrics/m/e.json at HEAD is stale: <each reason>``: how every command says it."""
    return f"{path} at {where} is stale: " + "; ".join(map(str, reasons))


def staleness(doc: Mapping, *, model_md5: str | None, evalset_md5: str | None,
              params: Mapping | None = None, concurrency: int | None = None,
              where: str = WORKSPACE) -> list[StaleReason]:
    """Why ``doc`` does not describe the tracked model, eval set and current eval params ([] when it does).

    ``model_md5`` / ``evalset_md5`` are what the revision labelled ``where`` tracks at the paths the
    result names (None: not tracked there, nothing to compare). ``params`` are the current params as
    :func:`gitmodel.evaluate.recorded_params` gives them (None: do not compare params); ``concurrency``
    is the current ``eval.openai.concurrency`` for a result whose timings were measured through a
    server (it changes its latencies).
    """
    from gitmodel import params as params_mod

    reasons = []
    for kind, ref, tracked in ((MODEL, doc.get("model"), model_md5), (EVALSET, doc.get("evalset"), evalset_md5)):
        ref = ref if isinstance(ref, Mapping) else {}
        if tracked is not None and ref.get("md5") != tracked:
            reasons.append(StaleReason(kind, ref.get("md5"), tracked, ref.get("path"), where))
    if params is not None:
        recorded = doc.get("params") or {}
        current = dict(params)
        if "openai" not in recorded and recorded.get("runner", current.get("runner")) != "openai":
            current.pop("openai", None)   # runner settings of another runner do not shape this result
        changes = param_changes(recorded, current, params_mod.EVAL_DEFAULTS)
        if changes:
            reasons.append(StaleReason(PARAMS, recorded, current, where=where, changes=tuple(changes)))
        conditions = doc.get("timing_conditions") or {}
        if (concurrency is not None and conditions.get("runner") == "openai"
                and conditions.get("concurrency") != concurrency):
            reasons.append(StaleReason(CONCURRENCY, conditions.get("concurrency"), concurrency, where=where))
    return reasons


def tracked_paths(doc: Mapping) -> list[str]:
    """The tracked files a result names (model, eval set); a served model names none."""
    refs_ = [doc.get("model"), doc.get("evalset")]
    return [ref["path"] for ref in refs_ if isinstance(ref, Mapping) and ref.get("path") and ref.get("md5")]


def stale_at(root, rev, doc: Mapping, *, with_params: bool = False,
             tracked: Mapping[str, str | None] | None = None,
             eval_params: Mapping | None = None) -> list[StaleReason]:
    """The one answer to "is this stored result stale, and why" for a result stored at ``rev`` (a
    :class:`gitmodel.revisions.Revision`): the model and eval set md5s it measured against what ``rev``
    tracks at those paths (:func:`gitmodel.store.tracked_md5s`), and with ``with_params`` (a workspace
    result that is about to be reused) the eval params in params.yaml now too. ``tracked`` is what
    ``rev`` tracks when the caller read it already (path -> md5); ``eval_params`` the workspace's
    params.eval_params when the caller read them already (checking many results)."""
    from gitmodel import store

    if tracked is None:
        tracked = store.tracked_md5s(root, [rev.commit], tracked_paths(doc))[rev.commit]
    md5_of = {}
    for key in ("model", "evalset"):
        ref = doc.get(key)
        path = ref.get("path") if isinstance(ref, Mapping) else None
        md5_of[key] = tracked.get(path) if path and ref.get("md5") else None
    params = concurrency = None
    if with_params:
        from pathlib import Path

        from gitmodel import params as params_mod
        from gitmodel.evaluate import recorded_params

        evalset = (doc.get("evalset") or {}).get("name")
        model = (doc.get("model") or {}).get("name")
        current = dict(eval_params) if eval_params is not None else params_mod.eval_params(Path(root))
        current = params_mod.for_pair(current, model, evalset)   # the model's and eval set's own overrides
        # the runner the result was made with is the one to re-run it with: `--runner` chooses per run
        runner = (doc.get("params") or {}).get("runner") or current["runner"]
        params, concurrency = recorded_params(dict(current, runner=runner)), current["openai"]["concurrency"]
    return staleness(doc, model_md5=md5_of["model"], evalset_md5=md5_of["evalset"], params=params,
                     concurrency=concurrency, where=rev.label)


# ----------------------------------------------------------------------------- producer


def verification_of(doc: Mapping) -> dict:
    """The result's ``verification`` ({"status", "detail"}); files written before it existed are tied
    when llama.cpp ran them (it loads only checked files), unverified otherwise."""
    found = doc.get("verification")
    if isinstance(found, Mapping) and found.get("status"):
        return dict(found)
    runner = (doc.get("runner") or {}).get("name")
    if runner == "llama":
        return {"status": TIED, "detail": "llama.cpp loaded the tracked checkpoint"}
    return {"status": UNVERIFIED, "detail": f"the {runner} runner recorded no identity of what it ran"}


def is_unverified(doc: Mapping) -> bool:
    return verification_of(doc)["status"] == UNVERIFIED


def served_verification(tracked_md5: str | None, served_md5: str | None, url: str,
                        served_model: str | None) -> dict:
    """The verification of a result produced by a server (the caller refused a served md5 that differs)."""
    if tracked_md5 is not None and served_md5 == tracked_md5:
        return {"status": TIED, "detail": f"{url} reported serving md5 {served_md5}"}
    what = f"model {served_model!r}" if served_model else "a model"
    if tracked_md5 is None:
        return {"status": UNVERIFIED, "detail": f"{url} served {what}, and no tracked checkpoint names its md5"}
    return {"status": UNVERIFIED,
            "detail": f"{url} served {what} without saying its md5, so nothing ties it to md5 {tracked_md5}"}


def machine() -> str:
    """This machine, as timings depend on it: hostname, CPU count and model."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    return f"{socket.gethostname()} ({os.cpu_count() or '?'} CPUs{', ' + cpu if cpu else ''})"


def timing_conditions(runner: str, concurrency: int, n_threads: int | None, url: str | None = None) -> dict:
    """Under what conditions the run's timings were measured; two results' timings compare only when equal."""
    where = machine()
    if url:
        # a server's timings depend on the server's machine, which only its address names
        where = f"server {url} from {where}"
    return {"runner": runner, "concurrency": int(concurrency), "n_threads": n_threads, "machine": where}


# ----------------------------------------------------------------------------- release / promote


def check_verified(results: Iterable, accept_unverified: str | None, action: str) -> list[str]:
    """Refuse ``action`` when a result is unverified, unless ``accept_unverified`` gives a rationale.

    ``results`` have ``.path`` and ``.doc`` (registry results). Returns the unverified paths that
    the rationale accepts (empty when every result is tied or reproduced).
    """
    unverified = [(r.path, verification_of(r.doc)["detail"]) for r in results if is_unverified(r.doc)]
    if accept_unverified is not None and (not accept_unverified.strip() or any(
            ord(c) < 32 and not c.isspace() or ord(c) == 127 for c in accept_unverified)):
        raise UnverifiedResult(action, [], empty_rationale=True)
    if unverified and accept_unverified is None:
        raise UnverifiedResult(action, unverified)
    return [path for path, _ in unverified]


def with_accepted_unverified(message: str | None, rationale: str) -> str:
    """A release message with the ``Accepted-Unverified`` trailer after the user's words."""
    trailer = f"Accepted-Unverified: {' '.join(rationale.split())}"
    return f"{message.rstrip()}\n\n{trailer}" if message and message.strip() else trailer


def check_release_verified(root, model: str, release, stage: str, accept_unverified: str | None) -> str | None:
    """:func:`check_verified` for promoting ``release``: its results as committed at the release.

    Returns the rationale to record in the stage tag (None when nothing needed accepting).
    """
    from gitmodel import results
    from gitmodel.revisions import Revision

    rev = Revision(f"{model}@{release.version}", release.commit)
    stored = results.results_at(root, rev, model=model)
    accepted = check_verified(stored, accept_unverified, f"promote {model}@{release.version} to {stage}")
    return " ".join(accept_unverified.split()) if accepted and accept_unverified else None
