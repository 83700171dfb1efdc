"""Which eval sets each model is evaluated on: the pairs of dvc.yaml's eval stage.

The pairing is read from one place (dvcyaml.pairs_of) at any revision, so every
command that reads results (log, show, status, diff, gate, promote, release)
reads a model's results on its own eval sets only. Metrics of a pair that is no
longer declared are *orphaned*: listed by ``pairs`` and ``status``, never read as
results, removed only by ``git model pairs prune``.

The rules of who joins what are pure (:func:`plan_evalset`, :func:`plan_model`);
:func:`table` answers ``git model pairs``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import dvcyaml

Pair = tuple[str, str]   # (model, evalset)


# ----------------------------------------------------------------------------- the rules (pure)


def plan_evalset(pairs: list[Pair], models: list[str], evalset: str, for_models: list[str]) -> tuple[list[Pair], list[str]]:
    """(the pairs after adding ``evalset`` for ``for_models``, the models newly paired with it). Without
    ``for_models`` a new eval set joins every model, and one that has pairs keeps them (a changed file
    added again must not undo its pairing); the pairs it had are kept (``--for`` adds, never removes)."""
    if for_models:
        joining = list(dict.fromkeys(for_models))
    else:
        joining = [] if any(e == evalset for _, e in pairs) else list(models)
    new = list(pairs)
    joined = []
    for model in joining:
        if (model, evalset) not in new:
            new.append((model, evalset))
            joined.append(model)
    return new, joined


def plan_model(pairs: list[Pair], evalsets: list[str], model: str, given: list[str]) -> tuple[list[Pair], list[str]]:
    """(the pairs after adding ``model`` on ``given`` eval sets, the eval sets it is evaluated on).

    Without ``given``, a model that has pairs keeps them; a new one joins the eval sets every other
    model is evaluated on (shared sets such as a smoke test, not another model's own), or every
    tracked eval set when it is the first model."""
    new = list(pairs)
    if given:
        wanted = list(dict.fromkeys(given))
    elif any(m == model for m, _ in pairs):
        wanted = [e for m, e in pairs if m == model]
    else:
        others = list(dict.fromkeys(m for m, _ in pairs if m != model))
        if others:
            wanted = [e for e in dict.fromkeys(e for _, e in pairs) if all((o, e) in pairs for o in others)]
        else:
            wanted = list(evalsets)
    for evalset in wanted:
        if (model, evalset) not in new:
            new.append((model, evalset))
    return new, [e for m, e in new if m == model]


def without(pairs: list[Pair], model: str, evalset: str) -> list[Pair]:
    return [p for p in pairs if p != (model, evalset)]


# ----------------------------------------------------------------------------- reading


@dataclass
class Declared:
    """What a dvc.yaml says about pairing: its pairs (None: no eval stage of git-model's, so nothing
    to filter by), each pair's foreach key, and the models of its artifacts."""

    pairs: list[Pair] | None
    keys: dict[Pair, str] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)

    def as_cached(self) -> dict:
        return {"pairs": None if self.pairs is None else [[m, e, self.keys.get((m, e))] for m, e in self.pairs],
                "models": self.models}

    @classmethod
    def from_cached(cls, doc: dict) -> "Declared":
        rows = doc.get("pairs")
        return cls(None if rows is None else [(m, e) for m, e, _ in rows],
                   {} if rows is None else {(m, e): k for m, e, k in rows if k is not None}, list(doc.get("models") or []))


def summary(data, where) -> Declared:
    """:class:`Declared` of a loaded dvc.yaml. Raises DvcError naming an entry that is not a pair."""
    stage = dvcyaml.eval_stage(data, where, create=False)
    artifacts = data.get("artifacts") if isinstance(data, dict) else None
    models = sorted(n for n, entry in (artifacts or {}).items() if isinstance(n, str) and (
        not isinstance(entry, dict) or entry.get("type", "model") == "model")) if isinstance(artifacts, dict) else []
    if stage is None:
        return Declared(None, {}, models)
    found = dvcyaml.pairs_of(stage, where)
    if dvcyaml.is_matrix(stage):
        keys = {(m, e): f"{m}-{e}" for m, e in found}
    else:
        keys = {}
        for key, item in (stage.get("foreach") or {}).items():
            keys.setdefault((item["model"], item["evalset"]), str(key))
    return Declared(found, keys, models)


class _Cache:
    """:class:`Declared` of a dvc.yaml's bytes, remembered by their hash in the state folder, so that
    commands that read dvc.yaml at every release (log, diff), and `pairs`, parse each version once."""

    STATE_DIR = ".dvc/tmp/gitmodel"   # project.STATE_DIR; project imports DVC's side, this stays light

    def __init__(self, root: Path):
        dvc_dir = Path(root) / ".dvc"
        self.path = Path(root) / self.STATE_DIR / "pairs-v3.json" if dvc_dir.is_dir() else None
        self.known: dict = {}
        self.dirty = False
        if self.path is not None:
            try:
                self.known = json.loads(self.path.read_text("utf-8"))
            except (OSError, ValueError):
                self.known = {}

    def get(self, data: bytes, where: str, lenient: bool) -> Declared | None:
        """None (only when ``lenient``) for a dvc.yaml that cannot be read."""
        from gitmodel.errors import DvcError

        key = hashlib.sha1(data).hexdigest()
        try:
            return Declared.from_cached(self.known[key])
        except (KeyError, TypeError, ValueError, AttributeError):   # not seen yet, or a damaged cache
            try:
                found = summary(dvcyaml.parse(data.decode("utf-8"), where), where)
            except (DvcError, UnicodeDecodeError):
                if not lenient:
                    raise
                return None   # a broken dvc.yaml at an old revision: its results are read as they are
            self.known[key] = found.as_cached()
            self.dirty = True
            return found

    def lock(self, data: bytes, where: str) -> dict:
        """:func:`pairdeps.lock_params` of dvc.lock's bytes."""
        from gitmodel import pairdeps

        key = "lock:" + hashlib.sha1(data).hexdigest()
        if not isinstance(self.known.get(key), dict):
            self.known[key] = json.loads(json.dumps(pairdeps.lock_params(data.decode("utf-8", "replace"), where),
                                                    default=str))
            self.dirty = True
        return self.known[key]

    def save(self) -> None:
        if not self.dirty or self.path is None:
            return
        try:
            from gitmodel.fsutil import atomic_write

            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps(self.known, sort_keys=True))
        except OSError:
            pass


def workspace(root: Path) -> Declared:
    """:class:`Declared` of the workspace's dvc.yaml (raises DvcError when it cannot be read)."""
    path = Path(root) / dvcyaml.DVC_YAML
    if not path.is_file():
        return Declared(None)
    cache = _Cache(root)
    found = cache.get(path.read_bytes(), str(path), lenient=False)
    cache.save()
    return found


def declared(root: Path) -> list[Pair]:
    """The pairs the workspace's dvc.yaml evaluates."""
    return workspace(root).pairs or []


def stage_keys(root: Path) -> dict[Pair, str]:
    """pair -> its foreach key (the stage is ``eval@<key>``) in the workspace's dvc.yaml."""
    return workspace(root).keys


def evalsets_of(declared: set[Pair] | list[Pair] | None, model: str) -> list[str] | None:
    """The eval sets ``model`` is paired with (None: no pairing declared, so no rule applies)."""
    return None if declared is None else sorted(e for m, e in declared if m == model)


def lock_changes(root: Path, found: "Declared", current: dict) -> dict:
    """pair -> the params.yaml keys whose values differ from what its dvc.lock entry records (what
    ``dvc status`` reports as changed params); ``current``: params.yaml's values."""
    from gitmodel import pairdeps

    path = Path(root) / pairdeps.LOCK_FILE
    if not path.is_file() or not found.pairs:
        return {}
    cache = _Cache(root)
    recorded = cache.lock(path.read_bytes(), str(path))
    cache.save()
    made = {}
    for pair in found.pairs:
        metrics = Path(root) / dvcyaml.metrics_path(*pair)
        if metrics.is_file():
            made[pair] = hashlib.md5(metrics.read_bytes()).hexdigest()
    return pairdeps.lock_param_changes(recorded, found.pairs, found.keys, current, made)


def lock_reason(stale_reasons, changes: list[str] | None) -> list[str]:
    """``dvc.lock records other params: ...`` for the ``changes`` (:func:`lock_changes` of a pair) whose key
    the result's own stale reasons (provenance.StaleReason) do not already name; [] when none is left."""
    said = {c.split(":", 1)[0] for r in stale_reasons for c in getattr(r, "changes", ())}
    left = [c for c in changes or [] if c.split(":", 1)[0] not in said]
    return ["dvc.lock records other params: " + "; ".join(left)] if left else []


def declared_with_lock_changes(root: Path) -> tuple[list[Pair] | None, dict]:
    """(the declared pairs, or None when dvc.yaml has no eval stage of git-model's; pair -> the params
    changed since its dvc.lock entry was recorded), for ``status``."""
    from gitmodel import params

    found = workspace(root)
    if found.pairs is None:
        return None, {}
    return found.pairs, lock_changes(root, found, {"eval": params.eval_params(root)})


def declared_at(root: Path, commits: list[str | None], reader=None) -> list[set[Pair] | None]:
    """Per commit (None: the workspace), the pairs its dvc.yaml declares; None where it declares
    none (no dvc.yaml, or no eval stage of git-model's): every result there is read."""
    from gitmodel import gitobjects

    root = Path(root)
    cache = _Cache(root)
    texts: dict[str | None, bytes | None] = {}
    committed = [c for c in dict.fromkeys(commits) if c is not None]
    if committed:
        # most commits share one dvc.yaml blob: read each distinct blob once
        ids = gitobjects.object_ids(root, [f"{c}:{dvcyaml.DVC_YAML}" for c in committed])
        blobs = gitobjects.read_blobs(root, [i for i in ids if i is not None], reader)
        for c, i in zip(committed, ids):
            texts[c] = blobs.get(i) if i is not None else None
    if None in commits:
        path = root / dvcyaml.DVC_YAML
        texts[None] = path.read_bytes() if path.is_file() else None
    found = []
    for c in commits:
        got = None if texts[c] is None else cache.get(texts[c], f"{dvcyaml.DVC_YAML} at {c or 'workspace'}", lenient=True)
        found.append(None if got is None or got.pairs is None else set(got.pairs))
    cache.save()
    return found


# ----------------------------------------------------------------------------- checks


def tracked_evalsets(root: Path, names) -> dict[str, bool]:
    from gitmodel import store

    rels = {n: dvcyaml.evalset_path(n) for n in names}
    md5s = store.tracked_md5s(root, [None], list(rels.values()), lenient=True)[None]
    return {n: md5s.get(rel) is not None for n, rel in rels.items()}


def models_known(root: Path) -> list[str]:
    """The models a pair may name: the artifacts of dvc.yaml (each `git model add` writes one)."""
    return workspace(root).models


def check_models(root: Path, names, known: list[str] | None = None) -> None:
    """Refuse a model that is not tracked, with the closest names."""
    from gitmodel.errors import ModelNotFound
    from gitmodel.known import did_you_mean

    known = models_known(root) if known is None else known
    for name in names:
        if name not in known:
            raise ModelNotFound(f"unknown model '{name}': {did_you_mean(name, known)}",
                                hint=f"track it first with `git model add {dvcyaml.model_path(name)}`")


def check_evalsets(root: Path, names, where: str | None = None) -> None:
    """Refuse an eval set that is not tracked; ``where`` names the pairing that names it."""
    from gitmodel.errors import EvalSetNotFound
    from gitmodel.known import did_you_mean

    tracked = tracked_evalsets(root, list(dict.fromkeys(names)))
    for name, ok in tracked.items():
        if not ok:
            others = tracked_names(root)
            raise EvalSetNotFound(
                f"{where + ' names ' if where else ''}eval set '{name}', which is not tracked "
                f"(no {dvcyaml.evalset_path(name)}.dvc): {did_you_mean(name, others)}",
                hint=f"track it with `git model evalset add {dvcyaml.evalset_path(name)}`"
                + (", or remove the pair from dvc.yaml" if where else ""))


def tracked_names(root: Path) -> list[str]:
    """The eval sets DVC tracks in the workspace (a .dvc file, or a stage's out in dvc.lock)."""
    folder = Path(root) / dvcyaml.EVALSETS_DIR
    names = {p.name.split(".jsonl")[0] for p in folder.glob("*.jsonl*")} if folder.is_dir() else set()
    return sorted(n for n, ok in tracked_evalsets(root, sorted(names)).items() if ok)


def check_declared(root: Path, pairs: list[Pair]) -> None:
    """Every pair names a tracked model and a tracked eval set."""
    check_evalsets(root, [e for _, e in pairs], where=f"{dvcyaml.DVC_YAML} (stages.eval)")
    known = models_known(root)
    for model, _ in pairs:
        if model not in known:
            check_models(root, [model], known)


# ----------------------------------------------------------------------------- writing


@dataclass
class PairingWrite:
    """The files a pairing change writes: dvc.yaml's new text, params.yaml's and dvc.lock's (None:
    unchanged; dvc.lock changes only when the eval stage is upgraded, as `git model init` does it)."""

    dvc_yaml: str
    params_yaml: str | None
    dvc_lock: str | None = None


def write_plan(root: Path, data, new_pairs: list[Pair], extra_evalsets=()) -> PairingWrite:
    """What to write so that dvc.yaml (``data``, loaded) evaluates ``new_pairs`` and params.yaml holds
    every key they depend on, and those of ``extra_evalsets`` (a tracked eval set has its section even
    before a pair names it, so a pair declared by hand runs). Nothing is written here."""
    from gitmodel import pairdeps

    path = Path(root) / dvcyaml.DVC_YAML
    before = dvcyaml.eval_stage(data, path, create=False)
    # a stage git-model wrote before a key became a dependency gets it here: its dvc.lock entries are
    # carried over, so that upgrading through `add` re-runs no more than `init` would
    upgrading = before is not None and (dvcyaml.is_matrix(before) or not dvcyaml.stage_params_current(before))
    text = dvcyaml.dump(dvcyaml.with_pairs(data, new_pairs, path))
    found = summary(data, path)
    # every model of dvc.yaml has its section, as every tracked eval set has: a pair declared by hand runs
    models = [m for m, _ in new_pairs] + found.models
    lock = pairdeps.migrated_lock(root, found.pairs or [], found.keys) if upgrading else None
    return PairingWrite(text, pairdeps.with_keys(root, [e for _, e in new_pairs] + list(extra_evalsets), models), lock)


def apply(root: Path, plan: PairingWrite) -> list[Path]:
    """Write a :class:`PairingWrite`; the caller holds the snapshot that undoes it (dvc.yaml, params.yaml
    and dvc.lock). Returns the files written."""
    from gitmodel.fsutil import atomic_write

    written = [Path(root) / dvcyaml.DVC_YAML]
    atomic_write(written[0], plan.dvc_yaml)
    if plan.params_yaml is not None:
        written.append(Path(root) / dvcyaml.PARAMS_FILE)
        atomic_write(written[-1], plan.params_yaml)
    if plan.dvc_lock is not None:
        from gitmodel.pairdeps import LOCK_FILE

        written.append(Path(root) / LOCK_FILE)
        atomic_write(written[-1], plan.dvc_lock)
    return written
