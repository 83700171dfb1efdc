"""A registry a team shares: ``push`` and ``fetch`` of tags with their weights, and remote presence.

The tags travel through the git remote, the weights (and the eval sets of the
releases) through the DVC remote; a tag is only worth sharing when a teammate
who fetches it can fetch its objects too. So ``push`` transfers the objects
first, checks each one on the remote as ``dvc status -c`` sees it, and only then
pushes the tags whose objects are all there. Tags are never forced: a tag that
exists on the other side with another target stops the command before anything
moves. Every step is idempotent, so running a push or a fetch again after a
failure or Ctrl-C completes it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import gitrepo, holdings, project, refs, remotes, store
from gitmodel import registry as registry_mod
from gitmodel.errors import DvcError, GitError, GitModelError

DEFAULT_GIT_REMOTE = "origin"
FETCHABLE_STAGES = (registry_mod.PROD, registry_mod.CANARY)   # a machine elsewhere must be able to serve these


class ShareError(GitModelError):
    """A push or fetch that could not complete; the message says what moved and what is missing."""


class TagConflict(ShareError):
    """A tag that names different objects here and on the git remote: never forced."""


class ShareInterrupted(KeyboardInterrupt):
    """Ctrl-C after something moved: the command line prints what moved and the way out instead of
    "nothing was written"."""


class NotOnRemote(GitModelError):
    """A promotion of weights that exist on this machine only."""


@dataclass
class ObjectLine:
    md5: str
    path: str
    holders: list[str]
    size: int | None = None
    reason: str | None = None        # why it is missing

    def to_dict(self) -> dict:
        return {"md5": self.md5, "path": self.path, "holders": self.holders, "size": self.size,
                "reason": self.reason}


@dataclass
class PushPlan:
    """What a push moves, decided from both sides' state before anything moves."""

    to_push: list[ObjectLine] = field(default_factory=list)       # in the cache, not on the remote
    present: list[ObjectLine] = field(default_factory=list)       # on the remote already
    missing: list[ObjectLine] = field(default_factory=list)       # neither in the cache nor on the remote
    tags_to_push: list[str] = field(default_factory=list)
    tags_present: list[str] = field(default_factory=list)
    tag_conflicts: list[str] = field(default_factory=list)
    tags_withheld: list[str] = field(default_factory=list)        # their objects cannot reach the remote


def plan_push(held: holdings.Holdings, local_tags: dict[str, str], remote_tags: dict[str, str],
              on_remote: set[str], cached: dict[str, int | None]) -> PushPlan:
    """Pure: objects and tags to push. ``cached``: md5 -> size for the objects in the local cache."""
    plan = PushPlan()
    for md5 in sorted(held.md5s()):
        line = ObjectLine(md5, held.path_of(md5), held.holders_of(md5), cached.get(md5))
        if md5 in on_remote:
            plan.present.append(line)
        elif md5 in cached:
            plan.to_push.append(line)
        else:
            line.reason = "not in the local DVC cache"
            plan.missing.append(line)
    withheld = set(held.tags_needing({m.md5 for m in plan.missing}))
    for tag in sorted(held.tags):
        if tag not in local_tags:
            continue
        if tag in remote_tags:
            (plan.tags_present if remote_tags[tag] == local_tags[tag] else plan.tag_conflicts).append(tag)
        elif tag in withheld:
            plan.tags_withheld.append(tag)
        else:
            plan.tags_to_push.append(tag)
    return plan


@dataclass
class PushResult:
    remote: str
    url: str
    git_remote: str
    models: list[str]
    plan: PushPlan
    pushed: list[ObjectLine] = field(default_factory=list)
    failed: list[ObjectLine] = field(default_factory=list)       # transferred but not on the remote after
    tags_pushed: list[str] = field(default_factory=list)
    tags_rejected: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def complete(self) -> bool:
        return not (self.plan.missing or self.failed or self.plan.tags_withheld or self.tags_rejected)

    @property
    def nothing_to_do(self) -> bool:
        return not (self.plan.to_push or self.plan.tags_to_push)

    def to_dict(self) -> dict:
        return {"remote": self.remote, "url": self.url, "git_remote": self.git_remote, "models": self.models,
                "dry_run": self.dry_run, "complete": self.complete,
                "objects": {"pushed": [o.to_dict() for o in (self.plan.to_push if self.dry_run else self.pushed)],
                            "present": [o.to_dict() for o in self.plan.present],
                            "missing": [o.to_dict() for o in self.plan.missing + self.failed]},
                "tags": {"pushed": self.plan.tags_to_push if self.dry_run else self.tags_pushed,
                         "present": self.plan.tags_present, "withheld": self.plan.tags_withheld,
                         "rejected": self.tags_rejected}}


def _check_git_remote(root: Path, name: str) -> None:
    if name.startswith("-"):
        raise GitError(f"'{name}' is not a git remote name")
    names = gitrepo.remote_names(root)
    if name not in names:
        raise GitError(f"no git remote named '{name}' (remotes: {', '.join(names) or 'none'})",
                       hint="add the repository your team shares: `git remote add origin URL`, "
                            "or name another with --git-remote")


def _conflict(tags: list[str], git_remote: str, pushing: bool) -> TagConflict:
    shown = ", ".join(tags[:5]) + (f" and {len(tags) - 5} more" if len(tags) > 5 else "")
    where = f"git remote '{git_remote}'"
    sides = f"on {where} with another target than here" if pushing else f"here with another target than on {where}"
    return TagConflict(f"tag(s) {shown} exist {sides}: nothing was {'pushed' if pushing else 'fetched'} "
                       "(tags are never forced)",
                       hint=f"compare them (`git ls-remote --tags {git_remote}`, `git show TAG`); a release is "
                            "immutable: release the next version rather than re-tag one")


def _size(root: Path, md5: str) -> int | None:
    try:
        return store.cache_path(root, md5).stat().st_size
    except OSError:
        return None


def push(models: list[str] | tuple = (), remote: str | None = None, git_remote: str = DEFAULT_GIT_REMOTE,
         dry_run: bool = False, progress=None, start: Path | None = None) -> PushResult:
    """Push the release and stage tags of ``models`` (all when empty) to ``git_remote`` and the objects of
    every release and stage holder to the DVC remote; then check each object on the remote. Raises
    :class:`ShareError` (after pushing all it could) when an object or tag could not be pushed."""
    root = project.open_root(start)
    _check_git_remote(root, git_remote)
    reg = registry_mod.load(root)
    models = holdings.check_models(reg, list(models))
    held = holdings.holdings(root, reg, models)
    with remotes.open_remote(root, remote) as dvc_remote:
        cached = {m: _size(root, m) for m in held.md5s() if store.in_cache(root, m)}
        plan = plan_push(held, gitrepo.tag_objects(root), gitrepo.remote_tags(root, git_remote),
                         dvc_remote.present(held.md5s()), cached)
        if plan.tag_conflicts:
            raise _conflict(plan.tag_conflicts, git_remote, pushing=True)
        result = PushResult(dvc_remote.name, dvc_remote.url, git_remote, models, plan, dry_run=dry_run)
        if dry_run:
            return result
        try:
            if plan.to_push:
                dvc_remote.push([o.md5 for o in plan.to_push], progress)
            there = dvc_remote.present([o.md5 for o in plan.to_push])     # verified as `dvc status -c` sees it
        except KeyboardInterrupt:
            raise ShareInterrupted("Interrupted: the objects copied so far stay on the DVC remote; no tag was "
                                   "pushed. Run `git model push` again: it pushes what is missing.") from None
        result.pushed = [o for o in plan.to_push if o.md5 in there]
        result.failed = [ObjectLine(o.md5, o.path, o.holders, o.size, "not on the remote after the transfer")
                         for o in plan.to_push if o.md5 not in there]
    withheld = set(held.tags_needing({o.md5 for o in result.failed}))
    plan.tags_withheld = sorted(set(plan.tags_withheld) | (withheld & set(plan.tags_to_push)))
    tags = [t for t in plan.tags_to_push if t not in withheld]
    try:
        result.tags_rejected = gitrepo.push_tags(root, git_remote, tags)
    except KeyboardInterrupt:
        raise ShareInterrupted("Interrupted while pushing tags: every object is on the DVC remote, some tags may "
                               "not be on the git remote yet. Run `git model push` again: it pushes what is "
                               "missing.") from None
    result.tags_pushed = [t for t in tags if t not in result.tags_rejected]
    if not result.complete:
        raise ShareError(_incomplete(result), hint=_incomplete_hint(result))
    return result


def _incomplete(result: PushResult) -> str:
    parts = [f"push incomplete: {len(result.pushed)} object(s) and {len(result.tags_pushed)} tag(s) pushed"]
    for o in result.plan.missing + result.failed:
        parts.append(f"{', '.join(o.holders)}: {o.path} md5 {o.md5} is {o.reason}")
    if result.plan.tags_withheld:
        parts.append(f"not pushed (their weights are not on the remote): {', '.join(result.plan.tags_withheld)}")
    for tag, why in result.tags_rejected.items():
        parts.append(f"git remote '{result.git_remote}' rejected {tag}: {why}")
    return "; ".join(parts)


def _incomplete_hint(result: PushResult) -> str:
    if result.plan.missing:
        return ("push from the machine that has those weights (its `git model push` sends them), or bring them "
                "into this cache (`dvc fetch` from where they are); then run `git model push` again")
    return "run `git model push` again: it pushes what is missing"


@dataclass
class FetchResult:
    remote: str
    url: str
    git_remote: str
    models: list[str]
    tags_fetched: list[str] = field(default_factory=list)
    fetched: list[ObjectLine] = field(default_factory=list)
    cached: int = 0                  # objects already in the local cache

    def to_dict(self) -> dict:
        return {"remote": self.remote, "url": self.url, "git_remote": self.git_remote, "models": self.models,
                "tags": {"fetched": self.tags_fetched}, "objects": {"fetched": [o.to_dict() for o in self.fetched],
                                                                     "cached": self.cached}}


def fetch(models: list[str] | tuple = (), remote: str | None = None, git_remote: str = DEFAULT_GIT_REMOTE,
          progress=None, start: Path | None = None) -> FetchResult:
    """Fetch the registry tags of ``models`` (all when empty) from ``git_remote`` and the objects of their
    releases and stage holders from the DVC remote into the local cache: afterwards ``rollback``,
    ``verify`` and ``gate --rerun`` need no network."""
    root = project.open_root(start)
    _check_git_remote(root, git_remote)
    remotes.resolve_remote(root, remote)            # no DVC remote: refuse before fetching any tag
    theirs = gitrepo.remote_tags(root, git_remote)
    ours = gitrepo.tag_objects(root)
    wanted = [t for t in sorted(theirs) if (p := refs.parse_tag(t)) is not None and (not models or p.name in models)]
    conflicts = [t for t in wanted if t in ours and ours[t] != theirs[t]]
    if conflicts:
        raise _conflict(conflicts, git_remote, pushing=False)
    new_tags = [t for t in wanted if t not in ours]
    gitrepo.fetch_tags(root, git_remote, new_tags)
    reg = registry_mod.load(root)
    models = holdings.check_models(reg, list(models))
    held = holdings.holdings(root, reg, models)
    need = sorted(m for m in held.md5s() if not store.in_cache(root, m))
    with remotes.open_remote(root, remote) as dvc_remote:
        result = FetchResult(dvc_remote.name, dvc_remote.url, git_remote, models, new_tags,
                             cached=len(held.md5s()) - len(need))
        if need:
            try:
                dvc_remote.fetch(need, progress)
            except KeyboardInterrupt:
                raise ShareInterrupted("Interrupted: the tags and the objects fetched so far are kept. Run "
                                       "`git model fetch` again: it fetches what is missing.") from None
    result.fetched = [ObjectLine(m, held.path_of(m), held.holders_of(m), _size(root, m))
                      for m in need if store.in_cache(root, m)]
    missing = [m for m in need if not store.in_cache(root, m)]
    if missing:
        listed = "; ".join(f"{', '.join(held.holders_of(m))}: {held.path_of(m)} md5 {m}" for m in missing)
        raise ShareError(f"fetch incomplete: {len(result.fetched)} object(s) fetched, {len(missing)} not on DVC "
                         f"remote '{result.remote}': {listed}",
                         hint="ask whoever released them to run `git model push`, then fetch again")
    return result


def local_only(root: Path) -> bool:
    """No default DVC remote: the weights of this registry live on this machine only."""
    return remotes.default_remote(root) is None


LOCAL_ONLY_NOTE = ("no DVC remote is configured: this registry's weights live on this machine only "
                   "(`dvc remote add -d storage URL`, then `git model push`)")


def require_fetchable(root: Path, release: registry_mod.Release, stage: str, allow_local: bool = False) -> None:
    """Refuse to give prod or canary to a release whose objects are not on the DVC remote: a rollback to
    it, or a server started from it, on another machine would fail. Without a DVC remote there is no
    elsewhere to check."""
    if stage not in FETCHABLE_STAGES or allow_local or local_only(root):
        return
    held = holdings.commit_holdings(root, release.model, release.commit, release.tag)
    try:
        with remotes.open_remote(root) as dvc_remote:
            missing = sorted(held.md5s() - dvc_remote.present(held.md5s()))
            name = dvc_remote.name
    except DvcError as e:
        raise DvcError(f"cannot check that {release.tag}'s weights are on the DVC remote: {e.message}",
                       hint=f"{e.hint}; or promote with --allow-local if only this machine serves it") from None
    if missing:
        listed = ", ".join(f"{held.path_of(m)} md5 {m}" for m in missing)
        raise NotOnRemote(f"{release.tag} is not on DVC remote '{name}' ({listed}): a teammate or server that "
                          f"fetches {release.model}#{stage} could not get it",
                          hint=f"push it first: `git model push {release.model}`; or promote with --allow-local")


@dataclass
class ReleasePushResult:
    release: object                  # releasing.ReleaseResult
    pushed: list[ObjectLine]
    present: list[ObjectLine]
    remote: str
    git_remote: str

    def to_dict(self) -> dict:
        return {**self.release.to_dict(), "push": {
            "remote": self.remote, "git_remote": self.git_remote, "tag": self.release.tag,
            "objects": {"pushed": [o.to_dict() for o in self.pushed], "present": [o.to_dict() for o in self.present]}}}


def release_and_push(model: str, version: str, *, remote: str | None = None,
                     git_remote: str = DEFAULT_GIT_REMOTE, progress=None, start: Path | None = None,
                     **release_options) -> ReleasePushResult:
    """``release`` whose weights reach the DVC remote before the tag is written, and whose tag is pushed
    once written. A refused release or an object that cannot be pushed leaves no tag."""
    from gitmodel import releasing

    root = project.open_root(start)
    refs.check_name(model)
    tag = refs.release_tag(model, refs.Version.parse(version))
    _check_git_remote(root, git_remote)
    if tag in gitrepo.remote_tags(root, git_remote):
        raise TagConflict(f"tag {tag} already exists on git remote '{git_remote}': nothing was released",
                          hint=f"fetch it (`git model fetch {model}`) and release the next version")
    moved: dict[str, list[ObjectLine]] = {}
    with remotes.open_remote(root, remote) as dvc_remote:
        def push_weights(plan) -> None:
            held = holdings.commit_holdings(root, model, plan.commit, plan.tag)
            cached = {m: _size(root, m) for m in held.md5s() if store.in_cache(root, m)}
            objects = plan_push(held, {}, {}, dvc_remote.present(held.md5s()), cached)
            if objects.to_push:
                dvc_remote.push([o.md5 for o in objects.to_push], progress)
            there = dvc_remote.present(held.md5s())
            lost = [o for o in objects.missing + objects.to_push if o.md5 not in there]
            if lost:
                listed = "; ".join(f"{o.path} md5 {o.md5} ({o.reason or 'not on the remote after the transfer'})"
                                   for o in lost)
                raise ShareError(f"{plan.tag} not released: its objects are not on DVC remote "
                                 f"'{dvc_remote.name}': {listed}",
                                 hint="check the remote (`dvc status -c`) and run the release again")
            moved["pushed"], moved["present"] = objects.to_push, objects.present

        released = releasing.release(model, version, start=root, before_tag=push_weights, **release_options)
        name = dvc_remote.name
    rejected = gitrepo.push_tags(root, git_remote, [released.tag])
    if rejected:
        raise ShareError(f"released {released.tag} here and its weights are on DVC remote '{name}', but git "
                         f"remote '{git_remote}' rejected the tag: {rejected[released.tag]}",
                         hint=f"see what the remote holds (`git ls-remote --tags {git_remote}`), then "
                              f"`git model push {model}`")
    return ReleasePushResult(released, moved.get("pushed", []), moved.get("present", []), name, git_remote)


@dataclass
class Presence:
    """Which stage holders have their objects on the DVC remote (``status``)."""

    remote: str | None                          # None: no DVC remote configured
    on_remote: dict[str, bool | None] = field(default_factory=dict)   # stage tag -> all its objects there
    error: str | None = None                    # the remote could not be read


def holder_presence(root: Path, holders: list[tuple[str, str, str]]) -> Presence:
    """For (model, commit, stage tag) triples: are all the objects of that commit on the default DVC
    remote? A remote that cannot be read is reported, not raised: ``status`` still shows the rest."""
    if local_only(root):
        return Presence(None)
    presence = Presence(remotes.default_remote(root), {tag: None for _, _, tag in holders})
    if not holders:
        return presence
    needs = {tag: holdings.commit_holdings(root, model, commit, tag).md5s() for model, commit, tag in holders}
    try:
        with remotes.open_remote(root) as dvc_remote:
            there = dvc_remote.present(set().union(*needs.values()))
    except DvcError as e:
        presence.error = e.message
        return presence
    presence.on_remote = {tag: bool(md5s) and md5s <= there for tag, md5s in needs.items()}
    return presence
