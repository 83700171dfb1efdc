"""What produced a stored result, whether it is tied to the tracked checkpoint, and whether it is stale.

Every "do these metrics still describe this checkpoint, eval set and params?"
question is answered by :func:`staleness`, so that ``eval`` (its cache),
``status`` and ``verify`` give the same answer for the same reason.

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
from typing import Any, Iterable, Mapping

from gitmodel.errors import UnverifiedResult

TIED, UNVERIFIED, REPRODUCED = "tied", "unverified", "reproduced"


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


def staleness(doc: Mapping, *, model_md5: str | None, evalset_md5: str | None,
              params: Mapping | None = None, concurrency: int | None = None,
              tracked_as: str = "the workspace tracks") -> list[str]:
    """Why ``doc`` does not describe the tracked model, eval set and current eval params ([] when it does).

    ``tracked_as`` says where ``model_md5`` comes from. ``params`` are the current params as :func:`gitmodel.evaluate.recorded_params` gives them (None: do not
    compare params); ``concurrency`` is the current ``eval.openai.concurrency`` for a result whose timings
    were measured through a server (it changes its latencies).
    """
    from gitmodel import params as params_mod

    reasons = []
    model = doc.get("model") or {}
    if model.get("md5") != model_md5:
        reasons.append(f"they describe model md5 {model.get('md5')}, {tracked_as} {model_md5}")
    evalset = doc.get("evalset") or {}
    if evalset_md5 is not None and evalset.get("md5") != evalset_md5:
        reasons.append(f"they describe eval set md5 {evalset.get('md5')}, {evalset.get('path')} is now {evalset_md5}")
    if params is not None:
        recorded = doc.get("params") or {}
        current = dict(params)
        if "openai" not in recorded and recorded.get("runner", current.get("runner")) != "openai":
            current.pop("openai", None)   # runner settings of another runner do not shape this result
        changes = param_changes(recorded, current, params_mod.EVAL_DEFAULTS)
        if changes:
            reasons.append("eval params changed since: " + "; ".join(changes))
        conditions = doc.get("timing_conditions") or {}
        if (concurrency is not None and conditions.get("runner") == "openai"
                and conditions.get("concurrency") != concurrency):
            reasons.append(f"timings were measured at eval.openai.concurrency {conditions.get('concurrency')}, "
                           f"now {concurrency}")
    return reasons


def workspace_staleness(root, doc: Mapping, model_md5: str | None) -> list[str]:
    """:func:`staleness` of a workspace result against what the workspace tracks and params.yaml says now."""
    from pathlib import Path

    from gitmodel import params as params_mod
    from gitmodel import store
    from gitmodel.evaluate import recorded_params

    evalset = doc.get("evalset") or {}
    tracked_set = None
    if isinstance(evalset, Mapping) and evalset.get("path"):
        entry = store.tracked(Path(root), Path(root) / str(evalset["path"]))
        tracked_set = entry.md5 if entry is not None else None
    current = params_mod.eval_params(Path(root))
    # the runner the result was made with is the one to re-run it with: `--runner` chooses per run
    runner = (doc.get("params") or {}).get("runner") or current["runner"]
    concurrency = current["openai"]["concurrency"]
    return staleness(doc, model_md5=model_md5, evalset_md5=tracked_set,
                     params=recorded_params(dict(current, runner=runner)), concurrency=concurrency)


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
    from gitmodel import registry

    rev = registry.Revision(f"{model}@{release.version}", release.commit)
    results = registry.results_at(root, rev, model=model)
    accepted = check_verified(results, accept_unverified, f"promote {model}@{release.version} to {stage}")
    return " ".join(accept_unverified.split()) if accepted and accept_unverified else None
