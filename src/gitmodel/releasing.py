"""``git model release``: check that HEAD holds a releasable model, then tag it.

Every check runs before the one write (``git tag``), so a refused release
leaves no trace; checks and write hold the repository lock, so two releases
cannot both pass the checks on one commit. The tag is GTO's
``<model>@v<semver>``, annotated, on the commit HEAD pointed to when the
checks began; its message is GTO's first line, the user's message and a
record of what was released (refs.release_message). The registry writes it
(:meth:`registry.Registry.register`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitmodel import dvcyaml, gitobjects, gitrepo, history, known, pairs, project, provenance, refs, store
from gitmodel import registry as registry_mod
from gitmodel import results as results_mod
from gitmodel.errors import GitModelError, ModelNotFound, StaleArtifact
from gitmodel.revisions import Revision


class ReleaseRefused(GitModelError):
    """A release that would not describe what the tag points to, or would break the version order."""


@dataclass
class ReleaseResult:
    model: str
    version: refs.Version
    tag: str
    commit: str
    record: dict
    message: str

    def to_dict(self) -> dict:
        return {"tag": self.tag, "model": self.model, "version": str(self.version),
                "commit": self.commit, "record": self.record}


def _check_message(message: str | None) -> str | None:
    if message is None:
        return None
    bad = sorted({c for c in message if (ord(c) < 32 and c not in "\n\t") or ord(c) == 127})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise ReleaseRefused(f"the release message holds control characters ({shown})",
                             hint="write it as plain text: newlines and tabs are fine")
    return message


def _check_tag_free(reg: registry_mod.Registry, model: str, version: refs.Version, tag: str) -> None:
    if tag in reg.tag_names:
        existing = reg.release(model, version)
        where = f" on commit {existing.commit[:7]}" if existing else ""
        raise ReleaseRefused(f"tag {tag} already exists{where}: a release is immutable",
                             hint=f"release the next version instead, e.g. "
                                  f"{_next_patch(reg.releases.get(model, []), version)}")


def _check_version_order(reg: registry_mod.Registry, model: str, version: refs.Version,
                         allow_lower: bool) -> None:
    releases = reg.releases.get(model, [])
    for r in releases:
        if r.version == version:   # same SemVer precedence (build metadata differs), or deregistered
            how = f"released and deregistered ({r.tag}!)" if r.deregistered else f"already released as {r.tag}"
            raise ReleaseRefused(f"version {version} of {model} was {how}: a version is never reused",
                                 hint=f"release the next version instead, e.g. {_next_patch(releases, version)}")
    highest = max((r.version for r in releases), default=None)
    if highest is not None and version < highest and not allow_lower:
        raise ReleaseRefused(f"{version} is not above the highest release of {model}, {highest}",
                             hint=f"release {_next_patch(releases, version)} or above, or pass --allow-lower "
                                  f"to release {version} anyway (e.g. a fix on an older line)")


def _next_patch(releases: list, version: refs.Version) -> str:
    top = max([r.version for r in releases] + [version])
    return str(refs.Version(top.major, top.minor, top.patch + 1))


def _check_committed(root: Path, model: str, head: str, committed: history.ModelState) -> None:
    """Refuse when the model, its dvc.lock entries or its metrics differ from HEAD in the workspace."""
    rel = dvcyaml.model_path(model)
    metrics_dir = f"{dvcyaml.METRICS_DIR}/{model}/"
    changed = []
    labels = {"??": "not committed", "M": "modified", "A": "added", "D": "deleted", "R": "renamed"}
    lock_changed = False
    for xy, path in gitrepo.status(root, [rel + ".dvc", store.LOCK_FILE, metrics_dir]):
        if path == store.LOCK_FILE:
            lock_changed = True
            continue
        code = xy if xy == "??" else (xy.strip() or "M")[0]
        changed.append(f"{path} ({labels.get(code, 'changed')})")
    if lock_changed:
        # dvc.lock holds every stage; only this model's entries (its own out, its eval results) matter
        prefixes = (rel, metrics_dir)
        lock = root / store.LOCK_FILE
        head_lock = gitrepo.show_file(root, head, store.LOCK_FILE)
        before = store.lock_entries(head_lock.decode("utf-8", "replace"), lock, prefixes) if head_lock else {}
        after = store.lock_entries(lock.read_text("utf-8"), lock, prefixes) if lock.is_file() else {}
        for stage in sorted(set(before) | set(after)):
            if before.get(stage) != after.get(stage):
                changed.append(f"{store.LOCK_FILE} (stage {stage})")
    if changed:
        raise ReleaseRefused(f"model '{model}' has uncommitted changes: {', '.join(sorted(changed))}",
                             hint="commit them (or restore them) first: a release tags what is committed")
    workspace = root / rel
    if committed.md5 and workspace.is_file():
        actual = project.hash_cache(root).md5(workspace)
        if actual != committed.md5:
            raise ReleaseRefused(
                f"{rel} in the workspace (md5 {actual}) is not the committed model (md5 {committed.md5})",
                hint=f"track and commit the new weights (`git model add {rel}`, `git model eval`, `git commit`), "
                     f"or restore the committed ones with `dvc checkout {rel}`")


@dataclass
class ReleasePlan:
    """What a release will write, decided (every check passed) before anything is written."""

    model: str
    version: refs.Version
    tag: str
    commit: str
    record: dict
    text: str


def release(model: str, version: str, message: str | None = None, allow_lower: bool = False,
            start: Path | None = None, accept_unverified: str | None = None, wait: float = 0.0,
            on_wait=None, before_tag=None) -> ReleaseResult:
    """Tag HEAD as ``<model>@v<semver>`` after checking that HEAD holds that model, committed,
    with current metrics, and that the version goes above every earlier one.

    The checks and the tag happen under the repository lock: two releases started together
    cannot both find HEAD unreleased and put two versions on one commit. ``before_tag(plan)`` runs once
    every check passed, before the tag is written (``release --push`` puts the weights on the DVC
    remote there); when it raises, no tag is written."""
    refs.check_name(model)
    parsed = refs.Version.parse(version)
    message = _check_message(message)
    root = project.open_root(start)
    with registry_mod.writing(root, wait=wait, on_wait=on_wait) as reg:
        plan = plan_release(root, reg, model, parsed, message, allow_lower, accept_unverified)
        if before_tag is not None:
            before_tag(plan)
        reg.register(plan.model, plan.version, plan.commit, plan.text)
    return ReleaseResult(plan.model, plan.version, plan.tag, plan.commit, plan.record, plan.text)


def plan_release(root: Path, reg: registry_mod.Registry, model: str, parsed: refs.Version, message: str | None,
                 allow_lower: bool, accept_unverified: str | None = None) -> ReleasePlan:
    """Every check of a release, reading only; raises when the release is refused. ``reg`` was read
    under the repository lock, so what is checked here still holds when the tag is written."""
    tag = refs.release_tag(model, parsed)
    head = gitrepo.head_commit(root)
    if head is None:
        raise ReleaseRefused("the repository has no commit yet", hint="commit the model and its metrics first")
    _check_tag_free(reg, model, parsed, tag)
    on_head = reg.releases_at(model, head)
    if on_head:
        # GTO maps a commit to one version of a model (a deregistered one too): a second one makes
        # `gto show` fail and would confuse stages
        how = " (deregistered)" if all(r.deregistered for r in on_head) else ""
        raise ReleaseRefused(f"HEAD ({head[:7]}) is already released as {on_head[-1].tag}{how}",
                             hint="commit the new model first; a commit holds one version of a model")
    _check_version_order(reg, model, parsed, allow_lower)
    rev = Revision("HEAD", head)
    with gitobjects.ObjectReader(root) as reader:
        committed = history.tracked_at(root, rev, [model], reader)[model]
        if committed.tracked_by is None:
            _check_committed(root, model, head, committed)   # a model added but not committed says so
            names = history.models_at(root, rev, reader)
            raise ModelNotFound(
                f"model '{model}' is not tracked at HEAD: no {dvcyaml.model_path(model)}.dvc and no dvc.lock "
                f"entry for it{known.suggestion(model, names)}",
                hint=f"track it with `git model add {dvcyaml.model_path(model)}`, evaluate it and commit")
        _check_committed(root, model, head, committed)
        own = pairs.evalsets_of(pairs.declared_at(root, [head], reader)[0], model)
        if own == []:
            raise ReleaseRefused(
                f"model '{model}' is evaluated on no eval set at HEAD: no pair of the eval stage in "
                f"{dvcyaml.DVC_YAML} names it",
                hint=f"pair it with one (`git model evalset add {dvcyaml.evalset_path('NAME')} --for {model}`, or "
                     f"`git model add {dvcyaml.model_path(model)} --evalset NAME`), run `dvc repro` and commit")
        results = results_mod.results_at(root, rev, model=model, reader=reader)
        missing = [e for e in own or [] if e not in {r.evalset for r in results}]
        if results and missing:
            raise ReleaseRefused(
                f"model '{model}' has no metrics at HEAD on {', '.join(missing)}, which dvc.yaml pairs it with "
                f"(no {', '.join(dvcyaml.metrics_path(model, e) for e in missing)})",
                hint="evaluate them (`dvc repro`) and commit the metrics")
        if not results:
            raise ReleaseRefused(
                f"model '{model}' has no metrics at HEAD (nothing in {dvcyaml.METRICS_DIR}/{model}/)",
                hint=f"evaluate it (`git model eval {model} --evalset NAME`, or `dvc repro`) and commit the metrics")
        tracked = store.tracked_md5s(root, [head], [p for r in results for p in provenance.tracked_paths(r.doc)],
                                     reader)[head]
    for r in results:
        reasons = provenance.stale_at(root, rev, r.doc, tracked=tracked)
        if reasons:
            raise StaleArtifact(
                provenance.describe(r.path, rev.label, reasons),
                hint=f"re-evaluate (`git model eval {model} --evalset {r.evalset}`, or `dvc repro`) and commit")

    if provenance.check_verified(results, accept_unverified, f"release {tag}"):
        message = provenance.with_accepted_unverified(message, accept_unverified)

    record = {
        "schema_version": refs.RECORD_SCHEMA,
        "model": model,
        "version": str(parsed),
        "path": committed.path,
        "md5": committed.md5,
        "size": committed.size,
        "tracked_by": committed.tracked_by,
        "lineage": committed.lineage,
        "gguf": committed.gguf,
        "evalsets": {r.evalset: {"md5": (r.doc.get("evalset") or {}).get("md5"),
                                 "metrics": history.headline(r.doc["metrics"])} for r in results},
    }
    text = refs.release_message(model, parsed, message, record)
    return ReleasePlan(model, parsed, tag, head, record, text)
