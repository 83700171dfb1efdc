"""What a rollback will do, decided from facts gathered beforehand. Pure: no git, no disk.

:func:`plan` takes :class:`Facts` (the target release, what the release commit,
HEAD, the index and the workspace hold, whether git can commit now) and
returns a :class:`RollbackPlan` (the model's md5, the files to restore and to
remove, the new ``dvc.lock``, what to commit, whether prod moves) or raises
:class:`RollbackRefused` saying why. :func:`model_action` decides, once the
workspace model's md5 is known, whether it may be replaced. ``rollback.py``
gathers the facts and applies the plan.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import dvcyaml, store
from gitmodel.errors import DvcError, GitModelError, ModelNotFound
from gitmodel.refs import Version
from gitmodel.registry import PROD, Registry, Release


class RollbackRefused(GitModelError):
    pass


@dataclass
class FileState:
    """What holds one path now (None: absent there)."""

    workspace: bytes | None
    index: bytes | None
    head: bytes | None


ABSENT = FileState(None, None, None)


@dataclass
class Facts:
    """Everything a rollback decides on, read before anything is touched."""

    model: str
    release: Release                     # the target
    commit: bool                         # False: --no-commit
    head: str | None                     # HEAD's commit (None: the repository has no commit)
    prod_version: Version | None         # the version holding prod (None: none, or an unreleased commit)
    head_label: str | None               # what HEAD holds, as a version when it is a release
    release_dvc: bytes | None            # <model>.gguf.dvc at the release commit
    release_lock: str | None             # dvc.lock at the release commit
    head_lock: str | None
    workspace_lock: str | None
    tracked_now: str | None              # how the workspace tracks the model: "dvc", "lock" or None
    release_metrics: dict[str, bytes]    # metrics/<model>/ files at the release commit
    head_metrics: dict[str, bytes]       # ... at HEAD
    workspace_metrics: list[str]         # ... in the workspace
    files: dict[str, FileState]          # the .dvc file and every metrics path above
    branch: str | None = None            # None: HEAD is detached (read only when committing)
    busy: str | None = None              # a git operation in progress (merge, rebase, ...)
    git_locks: list[Path] = field(default_factory=list)
    identity: str | None = None          # the committer
    identity_error: GitModelError | None = None   # why git does not know the committer

    @property
    def rel(self) -> str:
        return dvcyaml.model_path(self.model)    # the layout is a contract: models/<name>.gguf


@dataclass
class RollbackPlan:
    model: str
    rel: str
    release: Release
    md5: str                             # the model's md5 at the release
    kind: str                            # tracked by "dvc" (a .dvc file) or "lock" (an out of dvc.lock)
    was: str                             # the version rolled back from (prod holder), or what HEAD held
    restore: list[tuple[str, bytes | str]] = field(default_factory=list)  # written as at the release
    remove: list[str] = field(default_factory=list)   # metrics files the release does not have
    touched: list[str] = field(default_factory=list)  # every path a failure puts back
    commit: bool = True
    commit_paths: list[str] = field(default_factory=list)
    lock_left_out: bool = False          # dvc.lock restored but not committed: it holds other stages' changes
    assign_prod: bool = True
    identity: str | None = None

    @property
    def tracked_file(self) -> str:
        return f"{self.rel}.dvc" if self.kind == "dvc" else store.LOCK_FILE


def default_target(reg: Registry, model: str) -> Release:
    """The version that held prod before the current holder (like ``git checkout -``): the one
    ``gto show`` would name in prod if the current holder left it."""
    holder = reg.holder(model, PROD)
    if holder is None:
        known = reg.active_releases(model)
        if not known:
            from gitmodel.known import suggestion

            raise RollbackRefused(f"model '{model}' has no releases to roll back to{suggestion(model, reg.models())}")
        raise RollbackRefused(f"no version of '{model}' holds prod, so there is no previous one to go back to",
                              hint=f"name the version: git model rollback {model} --to VERSION")
    before = reg.runner_up(model, PROD)
    release = reg.release(model, before.version) if before is not None and before.version is not None else None
    if release is None or release.deregistered:
        raise RollbackRefused(f"{model}#prod has had no other version than {holder.version}: nothing to roll back to",
                              hint=f"name the version: git model rollback {model} --to VERSION")
    return release


def target_entry(release: Release, rel: str, dvc_bytes: bytes | None, lock_text: str | None) -> tuple[str, str]:
    """(md5, "dvc" | "lock") of the model's entry at the release: its .dvc file, else its out in dvc.lock."""
    if dvc_bytes is not None:
        out = store.parse_dvc_file(dvc_bytes.decode("utf-8"), Path(rel + ".dvc"))
        if out is None or not out.md5:
            raise DvcError(f"{rel}.dvc at {release.tag} has no md5 for its out")
        return out.md5, "dvc"
    if lock_text is not None:
        out = store.parse_lock(lock_text, Path(store.LOCK_FILE), rel)
        if out is not None and out.md5:
            return out.md5, "lock"
    raise ModelNotFound(f"release {release.tag} does not track {rel}: no {rel}.dvc and no dvc.lock out for it "
                        f"at commit {release.commit[:12]}")


# ----------------------------------------------------------------------------- dvc.lock entries


def _out_paths(entry) -> list[str]:
    return [str(o.get("path")) for o in (entry or {}).get("outs") or [] if isinstance(o, dict)]


def restored_lock(current: str | None, target: str | None, rel: str, model: str, release_tag: str) -> str | None:
    """``dvc.lock`` text with the model's entries (the stage producing ``rel``, the evals writing
    ``metrics/<model>/``) as in ``target``; other stages unchanged. None: no dvc.lock needed."""
    import io

    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    prefix = f"{dvcyaml.METRICS_DIR}/{model}/"

    def mine(entry) -> bool:
        return any(p == rel or p.startswith(prefix) for p in _out_paths(entry))

    yaml = YAML()   # round-trip, DVC's own layout of dvc.lock
    # a null param (eval.openai.model) as DVC writes it, never `null`: the other stages' entries stay byte for byte
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", ""))
    cur = yaml.load(current) if current else None
    tgt = yaml.load(target) if target else None
    cur_stages = (cur or {}).get("stages") or CommentedMap()
    tgt_mine = {name: entry for name, entry in ((tgt or {}).get("stages") or {}).items() if mine(entry)}
    for name, entry in tgt_mine.items():
        others = [p for p in _out_paths(entry) if p != rel and not p.startswith(prefix)]
        if others and rel in _out_paths(entry):
            now = cur_stages.get(name) or {}
            now_outs = {str(o.get("path")): o.get("md5") for o in now.get("outs") or []}
            then_outs = {str(o.get("path")): o.get("md5") for o in entry.get("outs") or []}
            changed = [p for p in others if now_outs.get(p) != then_outs.get(p)]
            if changed:
                raise RollbackRefused(
                    f"stage '{name}' in dvc.lock produces {rel} together with {', '.join(changed)}, which changed "
                    "since that release: rolling back the model alone would leave dvc.lock describing files "
                    "that are not there",
                    hint=f"roll the whole stage back by hand: git checkout {release_tag} -- dvc.lock && dvc checkout")
    merged = CommentedMap()
    for name, entry in cur_stages.items():
        if mine(entry):
            if name in tgt_mine:
                merged[name] = tgt_mine[name]
        else:
            merged[name] = entry
    for name, entry in tgt_mine.items():
        if name not in merged:
            merged[name] = entry
    if cur is None:
        if not merged:
            return None
        cur = CommentedMap([("schema", (tgt or {}).get("schema", "2.0")), ("stages", merged)])
    else:
        cur["stages"] = merged
    buf = io.StringIO()
    yaml.dump(cur, buf)
    return buf.getvalue()


# ----------------------------------------------------------------------------- what must not be lost


@dataclass
class Planned:
    """One file a rollback writes or removes: its target content (None: removed) and what holds it now."""

    path: str
    target: bytes | None
    workspace: bytes | None
    index: bytes | None
    head: bytes | None


def uncommitted(planned: list[Planned], commit: bool) -> list[str]:
    """The files (with why) whose content is not committed and that the rollback would overwrite or
    remove: what the workspace holds unless it is HEAD's or already the target's, and, when the rollback
    commits, what the index holds unless it is HEAD's or the target's."""
    found = []
    for f in planned:
        if f.workspace is not None and f.workspace not in (f.head, f.target):
            if f.head is None and f.index is None:
                why = "not committed"
            elif f.index != f.head and f.workspace == f.index:
                why = "staged change"
            else:
                why = "uncommitted change"
            found.append(f"{f.path} ({why})")
        elif commit and f.index != f.head and f.index != f.target:
            found.append(f"{f.path} (staged change)")
    return found


def _refuse_losing_changes(facts: Facts, kind: str) -> None:
    """Refuse to overwrite or remove a file whose content git does not hold: an untracked file in the
    model's metrics folder, an edit (staged or not) of the files restored, of the model's dvc.lock entries."""
    rel, model = facts.rel, facts.model
    paths = set(facts.release_metrics) | set(facts.workspace_metrics) | set(facts.head_metrics)
    targets: dict[str, bytes | None] = {p: facts.release_metrics.get(p) for p in paths}
    if kind == "dvc":
        targets[f"{rel}.dvc"] = facts.release_dvc
    planned = []
    for p in sorted(targets):
        now = facts.files.get(p) or ABSENT
        planned.append(Planned(p, targets[p], now.workspace, now.index, now.head))
    at_risk = uncommitted(planned, facts.commit)
    if facts.workspace_lock is not None:
        # dvc.lock keeps other stages' changes; only the model's own entries are replaced
        prefixes = (rel, f"{dvcyaml.METRICS_DIR}/{model}/")

        def entries(text):
            return store.lock_entries(text, Path(store.LOCK_FILE), prefixes) if text is not None else {}

        if entries(facts.workspace_lock) not in (entries(facts.head_lock), entries(facts.release_lock)):
            at_risk.append(f"{store.LOCK_FILE} (uncommitted change of the entries of {model})")
    if at_risk:
        raise RollbackRefused(
            f"the rollback would overwrite or remove what git does not hold: {', '.join(at_risk)}; nothing was "
            "changed",
            hint="commit them, or set them aside (`git stash --include-untracked`), then run the rollback again")


def _refuse_what_cannot_commit(facts: Facts) -> None:
    """What would make the commit fail, or put it somewhere it would be lost."""
    if facts.branch is None:
        raise RollbackRefused(f"HEAD is detached (at {(facts.head or '')[:7]}): the rollback commit would be on "
                              "no branch, and easy to lose; nothing was changed",
                              hint="switch to the branch to roll back on (`git switch BRANCH`), or pass --no-commit "
                                   "to restore the files without committing")
    if facts.busy:
        raise RollbackRefused(f"git is in the middle of {facts.busy}: a rollback commit now would be part of it",
                              hint="finish or abort it first, or pass --no-commit")
    for lock in facts.git_locks:
        name = Path(lock).name
        what = "index" if name == "index.lock" else "HEAD" if name == "HEAD.lock" else f"branch {facts.branch}"
        raise RollbackRefused(
            f"git's {what} is locked: {lock} exists. Another git process is running in this repository, "
            "or one was killed while holding the lock; nothing was changed",
            hint=f"if no git process is running, remove it (rm {lock}) and run the rollback again")
    if facts.identity is None and facts.identity_error is not None:
        raise facts.identity_error


# ----------------------------------------------------------------------------- the plan


def plan(facts: Facts) -> RollbackPlan:
    """The rollback ``facts`` call for, or RollbackRefused saying why there is none."""
    release, rel, model = facts.release, facts.rel, facts.model
    if facts.head is None and facts.commit:
        raise RollbackRefused("the repository has no commit yet", hint="commit first, or pass --no-commit")
    md5, kind = target_entry(release, rel, facts.release_dvc, facts.release_lock)
    if facts.tracked_now is not None and facts.tracked_now != kind:
        where = {"dvc": f"{rel}.dvc", "lock": "a stage in dvc.lock"}
        raise RollbackRefused(f"{rel} is tracked by {where[facts.tracked_now]} now but was tracked by {where[kind]} "
                              f"at {release.tag}: git-model does not switch how a model is tracked",
                              hint=f"roll back by hand: git checkout {release.tag} -- <its DVC files> && dvc checkout")
    was = str(facts.prod_version) if facts.prod_version not in (None, release.version) else facts.head_label
    new_lock, lock_foreign = facts.workspace_lock, False
    if facts.workspace_lock is not None or facts.release_lock is not None:
        new_lock = restored_lock(facts.workspace_lock, facts.release_lock, rel, model, release.tag)
        # dvc.lock is committed only when it holds no other uncommitted change than the model's entries
        lock_foreign = restored_lock(facts.head_lock, facts.release_lock, rel, model, release.tag) != new_lock
    _refuse_losing_changes(facts, kind)
    if facts.commit:
        _refuse_what_cannot_commit(facts)
        if lock_foreign and kind == "lock":
            raise RollbackRefused("dvc.lock has uncommitted changes of other stages; the rollback commit would "
                                  "have to include them or leave the model's entry out",
                                  hint="commit or stash dvc.lock first, or pass --no-commit")

    result = RollbackPlan(model, rel, release, md5, kind, was or "nothing", commit=facts.commit,
                          assign_prod=facts.prod_version != release.version, identity=facts.identity)
    if kind == "dvc" and (facts.files.get(f"{rel}.dvc") or ABSENT).workspace != facts.release_dvc:
        result.restore.append((f"{rel}.dvc", facts.release_dvc))
    if new_lock is not None and new_lock != facts.workspace_lock:
        result.restore.append((store.LOCK_FILE, new_lock))
    for p, data in sorted(facts.release_metrics.items()):
        if (facts.files.get(p) or ABSENT).workspace != data:
            result.restore.append((p, data))
    # a metrics file the release does not have is committed at HEAD and unchanged (checked above): git keeps it
    result.remove = [p for p in facts.workspace_metrics if p not in facts.release_metrics]
    metrics = sorted(set(facts.workspace_metrics) | set(facts.release_metrics) | set(facts.head_metrics))
    result.touched = [f"{rel}.dvc", store.LOCK_FILE,
                      *sorted(set(facts.workspace_metrics) | set(facts.release_metrics))]
    if facts.commit:
        paths = [f"{rel}.dvc"] if kind == "dvc" else []
        lock_there = facts.head_lock is not None or facts.workspace_lock is not None or new_lock is not None
        if not lock_foreign and lock_there:
            paths.append(store.LOCK_FILE)
        else:
            result.lock_left_out = any(p == store.LOCK_FILE for p, _ in result.restore)
        result.commit_paths = paths + metrics
    return result


def model_action(rel: str, exists: bool, md5: str | None, target_md5: str, tracked_md5: str | None,
                 in_cache: bool, force: bool) -> str:
    """What to do with the workspace model, once its md5 is known: "keep" (it holds the target's bytes
    already), "replace", or "save-and-replace" (it holds the tracked bytes, gone from the cache: keep them
    there first). Refuses to lose bytes that are not in the cache, unless ``force``."""
    if not exists:
        return "replace"
    if md5 == target_md5:
        return "keep"
    if in_cache:
        return "replace"
    if tracked_md5 is not None and md5 == tracked_md5:
        return "save-and-replace"
    if force:
        return "replace"
    raise RollbackRefused(f"{rel} has changes that are not in the DVC cache (md5 {md5}): a rollback would lose them",
                          hint=f"keep them with `git model add {rel}` (then commit), or pass --force to discard them")


def commit_message(p: RollbackPlan, previous_md5: str | None) -> str:
    return (f"Roll back {p.model} to {p.release.version} (was {p.was})\n\n"
            f"Model: {p.rel} md5 {p.md5} (was {previous_md5 or 'missing'})\n"
            f"Release: {p.release.tag} ({p.release.commit[:12]})\n")
