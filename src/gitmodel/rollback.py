"""``git model rollback``: a released model back in the workspace, verified, committed and in prod.

Order of work, so that nothing can be lost:

1. resolve the target release and the model's DVC entry at the release commit
   (its ``.dvc`` file, or its ``outs:`` entry in ``dvc.lock`` when a training
   stage produced it); refuse when a file to be overwritten or removed holds
   content git does not (untracked, edited or staged), or, when committing,
   when HEAD is detached;
2. the object: in the local DVC cache, else fetched from the default DVC
   remote, else stop naming the md5 -- nothing has been touched yet;
3. refuse when the workspace model holds bytes that are not in the cache
   (they would be lost; ``--force`` discards them);
4. verify the object's md5 (remembered by inode, size and mtime, as DVC's state
   database does, so an object is hashed once);
5. make the new file at a temporary name beside the model with the first
   ``cache.type`` this file system supports (reflink, hardlink, symlink, copy:
   the attempt *is* the probe), then swap it in with one atomic rename: the
   model path holds the old bytes or the new bytes, never a partial file and
   never nothing, and nothing is deleted first;
6. the ``.dvc`` file / ``dvc.lock`` entries and ``metrics/<model>/`` as they are
   at the release commit (committed metrics always describe committed weights);
7. commit exactly those paths (``git commit --only``: the user's other staged
   changes stay staged);
8. assign ``prod`` to the release with a new stage tag.

Every step looks at the state it finds, so running the rollback again after it
was killed completes it. The whole command holds the repository lock.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import dvcyaml, fsutil, gitrepo, locking, project, refs, stages, store
from gitmodel import registry as registry_mod
from gitmodel.errors import DvcError, GitError, GitModelError, ModelNotFound
from gitmodel.registry import Registry, Release
from gitmodel.fsutil import CHUNK, md5_of
from gitmodel.placement import place, remove_if_exists, save_to_cache



class RollbackRefused(GitModelError):
    pass


# ----------------------------------------------------------------------------- the plan


@dataclass
class Target:
    release: Release
    rel: str                       # the model file, relative to the root
    md5: str
    kind: str                      # "dvc" (a .dvc file) or "lock" (an out of a dvc.lock stage)
    dvc_bytes: bytes | None = None
    lock_text: str | None = None


@dataclass
class RollbackResult:
    model: str
    path: str
    target: str                    # the version rolled back to
    was: str                       # the version rolled back from (prod holder), or what HEAD tracked
    md5: str
    previous_md5: str | None = None
    method: str | None = None      # how the file was put in place; None when it already held the bytes
    fetched: bool = False
    verified: str = "recorded"     # "recorded" (known good) | "hashed" (one md5 pass now)
    tracked_file: str = ""
    restored: list[str] = field(default_factory=list)  # .dvc / dvc.lock / metrics paths written
    removed: list[str] = field(default_factory=list)   # metrics files of HEAD that the release does not have
    commit: str | None = None
    tag: str | None = None
    no_commit: bool = False
    unchanged: bool = False        # nothing to do: everything already as the target
    notes: list[str] = field(default_factory=list)
    message: str = ""

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in (
            "model", "path", "target", "was", "md5", "previous_md5", "method", "fetched", "verified",
            "tracked_file", "restored", "removed", "commit", "tag", "no_commit", "unchanged", "notes", "message")}


def default_target(reg: Registry, model: str) -> Release:
    """The version that held prod before the current holder (like ``git checkout -``): the one
    ``gto show`` would name in prod if the current holder left it."""
    holder = reg.holder(model, stages.PROD)
    if holder is None:
        known = reg.active_releases(model)
        if not known:
            from gitmodel.known import suggestion

            raise RollbackRefused(f"model '{model}' has no releases to roll back to{suggestion(model, reg.models())}")
        raise RollbackRefused(f"no version of '{model}' holds prod, so there is no previous one to go back to",
                              hint=f"name the version: git model rollback {model} --to VERSION")
    before = reg.runner_up(model, stages.PROD)
    release = reg.release(model, before.version) if before is not None and before.version is not None else None
    if release is None or release.deregistered:
        raise RollbackRefused(f"{model}#prod has had no other version than {holder.version}: nothing to roll back to",
                              hint=f"name the version: git model rollback {model} --to VERSION")
    return release


def resolve_target(release: Release, rel: str, dvc_bytes: bytes | None, lock_text: str | None,
                   root: Path) -> Target:
    """The model's entry at the release commit: its .dvc file, else its out in dvc.lock."""
    if dvc_bytes is not None:
        out = store.parse_dvc_file(dvc_bytes.decode("utf-8"), root / (rel + ".dvc"))
        if out is None or not out.md5:
            raise DvcError(f"{rel}.dvc at {release.tag} has no md5 for its out")
        return Target(release, rel, out.md5, "dvc", dvc_bytes=dvc_bytes)
    if lock_text is not None:
        out = store.parse_lock(lock_text, root / store.LOCK_FILE, rel)
        if out is not None and out.md5:
            return Target(release, rel, out.md5, "lock", lock_text=lock_text)
    raise ModelNotFound(f"release {release.tag} does not track {rel}: no {rel}.dvc and no dvc.lock out for it "
                        f"at commit {release.commit[:12]}")


def _object(root: Path, md5: str) -> tuple[Path, bool]:
    """(cache path, fetched now) of the object; fetched from the default remote when missing."""
    obj = store.cache_path(root, md5)
    if obj.is_file():
        return obj, False
    return store.fetch_object(root, md5), True


# ----------------------------------------------------------------------------- dvc.lock entries


def _yaml():
    from ruamel.yaml import YAML

    return YAML()   # round-trip, DVC's own layout of dvc.lock


def _out_paths(entry) -> list[str]:
    return [str(o.get("path")) for o in (entry or {}).get("outs") or [] if isinstance(o, dict)]


def restored_lock(current: str | None, target: str | None, rel: str, model: str, release_tag: str) -> str | None:
    """``dvc.lock`` text with the model's entries (the stage producing ``rel``, the evals writing
    ``metrics/<model>/``) as in ``target``; other stages unchanged. None: no dvc.lock needed."""
    import io

    from ruamel.yaml.comments import CommentedMap

    prefix = f"{dvcyaml.METRICS_DIR}/{model}/"

    def mine(entry) -> bool:
        return any(p == rel or p.startswith(prefix) for p in _out_paths(entry))

    yaml = _yaml()
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
    commits, what the index holds unless it is HEAD's or the target's. Pure."""
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


# ----------------------------------------------------------------------------- the rollback


def _workspace_md5(root: Path, path: Path, hashes, candidates: list[str]) -> str | None:
    """md5 of the workspace model without reading it when possible: a link to a cache object,
    or a file whose (inode, size, mtime) were recorded. None: it must be hashed."""
    if path.is_symlink():
        real = Path(os.path.realpath(path))
        cache = (store.cache_dir(root) / "files" / "md5").resolve()
        if real.is_file() and fsutil.is_inside(real, cache):
            return real.parent.name + real.name
    for md5 in candidates:
        obj = store.cache_path(root, md5)
        try:
            if obj.is_file() and os.path.samefile(obj, path):
                return md5
        except OSError:
            pass
    return hashes.known(path)


class _AlreadyThere(Exception):
    """The workspace model turned out to hold the target's bytes: nothing to rename."""


def same_bytes(a: Path, b: Path) -> bool:
    """Byte-for-byte equality, read in big chunks: several times faster than hashing."""
    ba, bb = bytearray(CHUNK), bytearray(CHUNK)
    with open(a, "rb", buffering=0) as f, open(b, "rb", buffering=0) as g:
        while True:
            n, m = f.readinto(ba), g.readinto(bb)
            if n != m:
                return False
            if n == 0:
                return True
            if (ba != bb) if n == CHUNK else (ba[:n] != bb[:n]):
                return False


def _prove(root: Path, path: Path, current) -> tuple[str, str, Path | None]:
    """(md5 of the workspace model, how it was found, the object compared with). The same bytes as the
    tracked object are found by comparing (cheap), anything else by hashing. Reads only: safe in a thread."""
    if current is not None and current.md5:
        tracked = store.cache_path(root, current.md5)
        try:
            if tracked.stat().st_size == path.stat().st_size and same_bytes(path, tracked):
                return current.md5, "compared", tracked
        except FileNotFoundError:
            pass
    return md5_of(path), "hashed", None


def _record_proof(hashes, path: Path, md5: str, how: str, compared: Path | None) -> str:
    """Remember the workspace's md5 when it is certain: hashed, or equal to a verified object."""
    if how == "hashed" or (compared is not None and hashes.known(compared) == md5):
        hashes.record(path, md5)
    return md5


def _label(reg: Registry, model: str, root: Path, rel: str) -> str:
    """What HEAD holds, as a version when it is a release."""
    head = gitrepo.head_commit(root)
    if head is None:
        return "nothing"
    releases = reg.active_releases(model)
    with gitrepo.ObjectReader(root) as reader:
        md5s = stages.tracked_md5_at(reader, list(dict.fromkeys([head] + [r.commit for r in releases])), rel)
    match = [r for r in releases if md5s.get(r.commit) and md5s.get(r.commit) == md5s.get(head)]
    if match:
        return str(match[-1].version)
    return f"unreleased {md5s[head][:8]}" if md5s.get(head) else "nothing"


def _refuse_losing_changes(root: Path, target: Target, rel: str, model: str, tgt_metrics: dict[str, bytes],
                           head_metrics: dict[str, bytes], ws_metrics: list[str],
                           locks: tuple[str | None, str | None, str | None], commit: bool) -> None:
    """Refuse, before anything is touched, to overwrite or remove a file whose content git does not hold:
    an untracked file in the model's metrics folder, an edit (staged or not) of the files restored."""
    paths = sorted(set(tgt_metrics) | set(ws_metrics) | set(head_metrics))
    targets: dict[str, bytes | None] = {p: tgt_metrics.get(p) for p in paths}
    if target.kind == "dvc":
        targets[f"{rel}.dvc"] = target.dvc_bytes
    names = sorted(targets)
    with gitrepo.ObjectReader(root) as reader:
        found = reader.read_many([f":{p}" for p in names] + [f"HEAD:{p}" for p in names])
    blob = [b[1] if b and b[0] == "blob" else None for b in found]
    planned = []
    for i, p in enumerate(names):
        f = root / p
        workspace = f.read_bytes() if f.is_file() else None
        planned.append(Planned(p, targets[p], workspace, blob[i], blob[len(names) + i]))
    at_risk = uncommitted(planned, commit)
    current_lock, head_lock, release_lock = locks
    if current_lock is not None:
        # dvc.lock keeps other stages' changes; only the model's own entries are replaced
        prefixes = (rel, f"{dvcyaml.METRICS_DIR}/{model}/")
        lock_path = root / store.LOCK_FILE

        def entries(text):
            return store.lock_entries(text, lock_path, prefixes) if text is not None else {}

        if entries(current_lock) not in (entries(head_lock), entries(release_lock)):
            at_risk.append(f"{store.LOCK_FILE} (uncommitted change of the entries of {model})")
    if at_risk:
        raise RollbackRefused(
            f"the rollback would overwrite or remove what git does not hold: {', '.join(at_risk)}; nothing was "
            "changed",
            hint="commit them, or set them aside (`git stash --include-untracked`), then run the rollback again")


def _check_can_commit(root: Path) -> str:
    """Refuse, before anything is touched, what would make the commit fail; returns the git identity."""
    if gitrepo.current_branch(root) is None:
        head = gitrepo.head_commit(root) or ""
        raise RollbackRefused(f"HEAD is detached (at {head[:7]}): the rollback commit would be on no branch, "
                              "and easy to lose; nothing was changed",
                              hint="switch to the branch to roll back on (`git switch BRANCH`), or pass --no-commit "
                                   "to restore the files without committing")
    busy, locks = gitrepo.commit_obstacles(root)
    if busy:
        raise RollbackRefused(f"git is in the middle of {busy}: a rollback commit now would be part of it",
                              hint="finish or abort it first, or pass --no-commit")
    for lock in locks:
        what = "index" if lock.name == "index.lock" else "HEAD"
        raise RollbackRefused(
            f"git's {what} is locked: {lock} exists. Another git process is running in this repository, "
            "or one was killed while holding the lock; nothing was changed",
            hint=f"if no git process is running, remove it (rm {lock}) and run the rollback again")
    return gitrepo.identity(root)


def rollback(model: str, to: str | None = None, *, no_commit: bool = False, force: bool = False,
             wait: float = 0.0, on_wait=None, start: Path | None = None) -> RollbackResult:
    """Roll ``model`` back to release ``to`` (default: the version that held prod before the current one)."""
    root = project.open_root(start)
    refs.check_name(model, "model name")
    with locking.repository_lock(root / project.STATE_DIR, wait=wait, on_wait=on_wait):
        return _rollback(root, model, to, no_commit=no_commit, force=force)


def _rollback(root: Path, model: str, to: str | None, *, no_commit: bool, force: bool) -> RollbackResult:
    reg = registry_mod.load(root)
    if to is not None:
        release = stages.find_release(reg, model, to)
    else:
        release = default_target(reg, model)
        stages.check_stageable(reg, release)
    holder = reg.holder(model, stages.PROD)
    rel = dvcyaml.model_path(model)      # the layout is a contract: models/<name>.gguf
    path = root / rel
    metrics_rel = f"{dvcyaml.METRICS_DIR}/{model}"
    lock_path = root / store.LOCK_FILE
    for folder in {path.parent, root, root / metrics_rel, root / project.STATE_DIR}:
        fsutil.remove_stale_temps(folder)    # left by a rollback that was killed
    head_commit = gitrepo.head_commit(root)
    if head_commit is None and not no_commit:
        raise RollbackRefused("the repository has no commit yet", hint="commit first, or pass --no-commit")

    # 1. the target's DVC entry at the release commit (every blob through one git cat-file)
    with gitrepo.ObjectReader(root) as reader:
        specs = [f"{release.commit}:{rel}.dvc", f"{release.commit}:{store.LOCK_FILE}"]
        if head_commit:
            specs.append(f"{head_commit}:{store.LOCK_FILE}")
        blobs = [b[1] if b and b[0] == "blob" else None for b in reader.read_many(specs)] + [None]
        tgt_metrics = gitrepo.files_at(root, release.commit, metrics_rel, reader)
        head_metrics = gitrepo.files_at(root, head_commit, metrics_rel, reader) if head_commit else {}
    release_lock, head_lock = _text(blobs[1]), _text(blobs[2])
    target = resolve_target(release, rel, blobs[0], release_lock, root)
    current = store.tracked(root, path)
    now_kind = None if current is None else ("lock" if current.source.name == store.LOCK_FILE else "dvc")
    if now_kind is not None and now_kind != target.kind:
        where = {"dvc": f"{rel}.dvc", "lock": "a stage in dvc.lock"}
        raise RollbackRefused(f"{rel} is tracked by {where[now_kind]} now but was tracked by {where[target.kind]} "
                              f"at {release.tag}: git-model does not switch how a model is tracked",
                              hint=f"roll back by hand: git checkout {release.tag} -- <its DVC files> && dvc checkout")
    was = str(holder.version) if holder is not None and holder.version not in (None, release.version) \
        else _label(reg, model, root, rel)
    result = RollbackResult(model, rel, str(release.version), was, target.md5, no_commit=no_commit,
                            tracked_file=f"{rel}.dvc" if target.kind == "dvc" else store.LOCK_FILE)
    current_lock = lock_path.read_text("utf-8") if lock_path.is_file() else None
    lock_foreign = False
    new_lock = current_lock
    if current_lock is not None or release_lock is not None:
        new_lock = restored_lock(current_lock, release_lock, rel, model, release.tag)
        # dvc.lock is committed only when it holds no other uncommitted change than the model's entries
        lock_foreign = restored_lock(head_lock, release_lock, rel, model, release.tag) != new_lock
    ws_metrics = sorted(p.relative_to(root).as_posix() for p in (root / metrics_rel).rglob("*")
                        if p.is_file() and not p.name.startswith(fsutil.TMP_PREFIX)) \
        if (root / metrics_rel).is_dir() else []
    _refuse_losing_changes(root, target, rel, model, tgt_metrics, head_metrics, ws_metrics,
                           (current_lock, head_lock, release_lock), commit=not no_commit)
    who = None
    if not no_commit:
        who = _check_can_commit(root)
        if lock_foreign and target.kind == "lock":
            raise RollbackRefused("dvc.lock has uncommitted changes of other stages; the rollback commit would "
                                  "have to include them or leave the model's entry out",
                                  hint="commit or stash dvc.lock first, or pass --no-commit")

    # 2. the object: in the cache, else fetched; else stop, naming the md5 -- nothing touched yet
    obj, result.fetched = _object(root, target.md5)
    hashes = project.hash_cache(root)

    # 3. the workspace model: replaced only when its bytes are in the cache (or --force)
    if path.is_dir() and not path.is_symlink():
        raise RollbackRefused(f"{rel} is a folder, not a model file")
    exists = path.is_file()               # a dangling symlink holds nothing to lose
    ws_md5 = _workspace_md5(root, path, hashes, [m for m in (current and current.md5, target.md5) if m]) \
        if exists else None
    obj_verified = hashes.known(obj) == target.md5
    proof = None
    if exists and ws_md5 is None:
        if obj_verified:
            ws_md5 = _record_proof(hashes, path, *_prove(root, path, current))
        else:
            # 4. the object must be hashed anyway: work out the workspace's bytes meanwhile, on another core
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(max_workers=1)
            proof = pool.submit(_prove, root, path, current)
            pool.shutdown(wait=False)
    keep_first = False

    def decide(md5: str | None) -> bool:
        """Refuse to lose bytes that are not in the cache; True when the model must be replaced."""
        nonlocal ws_md5, keep_first
        ws_md5 = result.previous_md5 = md5
        if not exists:
            return True
        if md5 == target.md5:
            return False
        if not store.cache_path(root, md5).is_file():
            if current is not None and md5 == current.md5:
                keep_first = True         # the tracked bytes, gone from the cache: keep them there first
            elif not force:
                raise RollbackRefused(f"{rel} has changes that are not in the DVC cache (md5 {md5}): "
                                      "a rollback would lose them",
                                      hint=f"keep them with `git model add {rel}` (then commit), or pass --force "
                                           "to discard them")
        return True

    def before_replace() -> None:
        """Runs once the new file is complete at its temporary name, before it is renamed over the model."""
        if proof is not None and not decide(_record_proof(hashes, path, *proof.result())):
            raise _AlreadyThere()
        if keep_first:
            save_to_cache(root, path, ws_md5)

    replace = decide(ws_md5) if proof is None else True

    # --- from here on the workspace changes; a failure puts every file back
    snapshot = fsutil.Snapshot(root / f"{rel}.dvc", lock_path, *(root / p for p in set(ws_metrics) | set(tgt_metrics)))
    replaced = False
    deleting = None
    try:
        # 4 + 5. the verified object -> the workspace, atomically
        if replace:
            types = store.cache_types(root)
            try:
                placed = place(obj, path, types, target.md5, verified=obj_verified, before_replace=before_replace)
            except _AlreadyThere:
                placed = None             # the workspace held the target's bytes already
            if not obj_verified:          # place() verified it before the rename (or before finding that out)
                result.verified = "hashed"
                hashes.record(obj, target.md5)
            if placed is not None:
                replaced = True
                result.method = placed.method
                if placed.old is not None:       # deleted while git works; joined before returning
                    deleting = threading.Thread(target=remove_if_exists, args=(placed.old,), name="gitmodel-unlink")
                    deleting.start()
                if placed.method not in types:   # nothing the config asks for works here (DVC would fail)
                    result.notes.append(
                        f"cache.type {','.join(types)}: {', '.join(placed.unsupported)} not supported by this "
                        f"file system (found out before the model was touched); used {placed.method}")
                hashes.record(path, target.md5)
        message = _commit_message(model, release, was, rel, target.md5, ws_md5)

        # 6. the DVC entry and the model's metrics, as at the release
        if target.kind == "dvc":
            dvc_file = root / f"{rel}.dvc"
            if not dvc_file.is_file() or dvc_file.read_bytes() != target.dvc_bytes:
                fsutil.atomic_write(dvc_file, target.dvc_bytes)
                result.restored.append(f"{rel}.dvc")
        if new_lock is not None and new_lock != current_lock:
            fsutil.atomic_write(lock_path, new_lock)
            result.restored.append(store.LOCK_FILE)
        for p, data in sorted(tgt_metrics.items()):
            f = root / p
            if not f.is_file() or f.read_bytes() != data:
                fsutil.atomic_write(f, data)
                result.restored.append(p)
        for p in ws_metrics:
            if p not in tgt_metrics:     # committed at HEAD and unchanged (checked above): git keeps it
                os.unlink(root / p)
                result.removed.append(p)
        result.message = message.splitlines()[0]
        if no_commit:
            result.unchanged = not replaced and not result.restored and not result.removed
            return result

        # 7. commit exactly those paths
        paths = [f"{rel}.dvc"] if target.kind == "dvc" else []
        if not lock_foreign and (head_lock is not None or lock_path.exists()):
            paths.append(store.LOCK_FILE)
        elif store.LOCK_FILE in result.restored:
            result.notes.append("dvc.lock has uncommitted changes of other stages: the model's entries were "
                                "restored in it but it was left out of the commit")
        paths += sorted(set(ws_metrics) | set(tgt_metrics) | set(head_metrics))
        result.commit = gitrepo.commit_paths(root, paths, message)
    except BaseException:
        snapshot.restore()
        if replaced:
            _put_back(root, path, ws_md5, exists)
        raise
    finally:
        if deleting is not None:
            deleting.join()
    # 8. prod -> the release. The commit was the point of no return: a failure here says how to finish.
    if holder is None or holder.version != release.version:
        rollback_commit = result.commit
        if rollback_commit is None:
            head = gitrepo.head_commit(root)
            subject = gitrepo.commit_info(root, [head]).get(head, {}).get("subject", "")
            if subject.startswith(f"Roll back {model} to {release.version} "):
                rollback_commit = head     # made by a rollback that was killed before its tag
        trailers = {
            "Assigned-By": who,
            "Assigned-At": stages.now_iso(),
            "Gate": "skipped: rollback",
            "Rollback-From": was,
            "Rollback-Commit": rollback_commit,
        }
        try:
            # the registry read at the start still holds: no other git-model writer runs (the lock)
            result.tag, _ = stages.assign(root, reg, model, stages.PROD, release, trailers)
        except GitError as e:
            raise GitError(f"the rollback was committed but prod could not be assigned: {e.message}",
                           hint=f"run `git model rollback {model} --to {release.version}` again to finish it") from e
    result.unchanged = not replaced and not result.restored and not result.removed and result.commit is None \
        and result.tag is None
    return result


def _text(data: bytes | None) -> str | None:
    return data.decode("utf-8") if data is not None else None


def _commit_message(model: str, release: Release, was: str, rel: str, md5: str, previous: str | None) -> str:
    return (f"Roll back {model} to {release.version} (was {was})\n\n"
            f"Model: {rel} md5 {md5} (was {previous or 'missing'})\n"
            f"Release: {release.tag} ({release.commit[:12]})\n")


def _put_back(root: Path, path: Path, md5: str | None, existed: bool) -> None:
    """Undo step 5 after a later step failed: the previous bytes are in the cache (checked in step 3)."""
    try:
        if not existed:
            remove_if_exists(path)
        elif md5 is not None and store.cache_path(root, md5).is_file():
            placed = place(store.cache_path(root, md5), path, store.cache_types(root), md5, verified=True)
            if placed.old is not None:
                remove_if_exists(placed.old)
    except (OSError, GitModelError):
        pass
