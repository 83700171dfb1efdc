"""Revisions: the one grammar every command that takes one reads (``show``, ``diff``, ``gate``,
``verify --rev``, ``rollback --to``), and its resolution to a commit or the workspace.

  ``workspace``            the files on disk (also: no revision given where the workspace is the default)
  ``<model>@vX.Y.Z``       a release (``@X.Y.Z`` too); a deregistered one still names its commit
  ``<model>@latest``       the highest active release by SemVer (``@greatest``, as GTO spells it)
  ``<model>#<stage>``      the version holding the stage, as GTO reads the tags (:meth:`Registry.holder`)
  anything else            a git revision (``HEAD~2``, ``main``, a sha, any tag); a name that is both a
                           branch and a tag is refused rather than guessed

:func:`parse` is the grammar alone (pure); :func:`resolve` reads git and the registry;
:func:`release_of` is the stricter reading of ``rollback --to``, which restores a release.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitmodel import gitrepo, known, refs
from gitmodel.errors import GitModelError, InvalidName
from gitmodel.refs import Version
from gitmodel.registry import Registry, Release

WORKSPACE = gitrepo.WORKSPACE
LATEST = ("latest", "greatest")      # GTO accepts both


class UnknownRevision(GitModelError):
    pass


@dataclass(frozen=True)
class Spec:
    """What a revision's text says, before git or the registry is read."""

    text: str
    kind: str                      # "workspace" | "release" | "latest" | "stage" | "git"
    model: str | None = None
    version: Version | None = None
    stage: str | None = None


@dataclass
class Revision:
    """A resolved revision: a commit, or the workspace."""

    text: str                 # what the user typed
    commit: str | None        # None for the workspace
    model: str | None = None  # set for registry references (chat@v1, chat#prod)
    release: Release | None = None

    @classmethod
    def of(cls, release: Release) -> "Revision":
        return cls(release.tag, release.commit, release.model, release)

    @property
    def is_workspace(self) -> bool:
        return self.commit is None

    @property
    def label(self) -> str:
        if self.is_workspace:
            return WORKSPACE
        if self.release and self.text != self.release.tag:
            return f"{self.text} ({self.release.tag})"
        return self.text


def parse(text: str | None) -> Spec:
    """The grammar above, pure. Raises UnknownRevision for text no reading can accept."""
    if text in (WORKSPACE, "", None):
        return Spec(WORKSPACE, "workspace")
    if text.startswith("-"):
        raise UnknownRevision(f"invalid revision {text!r}: revisions do not start with '-'")
    model, at, version = text.partition("@")
    if at and refs.NAME_RE.match(model):
        if version in LATEST:
            return Spec(text, "latest", model)
        if version.startswith("v") or refs.VERSION_RE.match(f"v{version}"):
            try:
                return Spec(text, "release", model, version=Version.parse(version))
            except InvalidName:
                raise UnknownRevision(f"{text}: {version!r} is not a SemVer version like v1.2.0") from None
    model, sharp, stage = text.partition("#")
    if sharp and refs.NAME_RE.match(model) and refs.NAME_RE.match(stage):
        return Spec(text, "stage", model, stage=stage)
    return Spec(text, "git")     # e.g. HEAD@{1}, main, chat#prod#3 (a stage tag read as a git tag)


def _load(root: Path, registry: Registry | None) -> Registry:
    if registry is not None:
        return registry
    from gitmodel import registry as registry_mod

    return registry_mod.load(root)


def resolve(root: Path, text: str | None, registry: Registry | None = None) -> Revision:
    """The commit (or the workspace) ``text`` names. The registry is read only for a registry
    reference or to say "did you mean" about an unknown revision; pass it when already loaded."""
    spec = parse(text)
    if spec.kind == "workspace":
        return Revision(WORKSPACE, None)
    if spec.kind == "latest":
        registry = _load(root, registry)
        release = registry.latest(spec.model)
        if release is None:
            close = known.suggestion(spec.model, registry.models())
            raise UnknownRevision(f"{text}: model '{spec.model}' has no releases{close}",
                                  hint=None if close else f"release one with `git model release {spec.model} v1.0.0`")
        return Revision(text, release.commit, spec.model, release)
    if spec.kind == "release":
        registry = _load(root, registry)
        release = registry.release(spec.model, spec.version)
        if release is None:
            versions = [str(r.version) for r in registry.active_releases(spec.model)]
            about = f"; releases of {spec.model}: {', '.join(versions[-5:])}" if versions else \
                f"; model '{spec.model}' has no releases{known.suggestion(spec.model, registry.models())}"
            raise UnknownRevision(f"unknown release {text}{about}")
        return Revision(text, release.commit, spec.model, release)
    if spec.kind == "stage":
        registry = _load(root, registry)
        model, stage = spec.model, spec.stage
        event = registry.holder(model, stage)
        if event is None:
            stages = sorted(registry.holders(model))
            about = f"; stages of {model}: {', '.join(stages)}" if stages else \
                f"; '{model}' is deprecated (a {model}@deprecated tag is its newest), so no stage " \
                "holds it" if model in registry.deprecated else \
                "" if model in registry.models() else \
                f"; model '{model}' has no releases or stages{known.suggestion(model, registry.models())}"
            raise UnknownRevision(f"{text}: no version of '{model}' holds stage '{stage}'{about}",
                                  hint=f"promote one with `git model promote {model} VERSION --stage {stage}`")
        return Revision(text, event.commit, model, registry.release_at(model, event.commit))
    kinds = gitrepo.ref_kinds(root, text)
    if "branch" in kinds and "tag" in kinds:
        raise UnknownRevision(f"{text!r} is both a branch and a tag: git-model does not guess",
                              hint=f"say which: refs/heads/{text} or refs/tags/{text}")
    commit = gitrepo.resolve_commit(root, text)
    if commit is None:
        registry = _load(root, registry)
        branches = gitrepo.run_git(root, "for-each-ref", "--format=%(refname:short)", "refs/heads").decode().split()
        hint = (f"a model is not a revision: name one of its versions, e.g. {text}@latest, {text}@v1.0.0 "
                f"or {text}#prod" if text in registry.models() else None)
        raise UnknownRevision(f"unknown revision {text!r}{known.suggestion(text, registry.tag_names + branches)}", hint=hint)
    return Revision(text, commit)


def release_of(root: Path, model: str, text: str, registry: Registry) -> Release:
    """The active release of ``model`` that ``text`` names, for a command that restores a release.

    Besides the grammar above, a bare version (``v1.2.0``, ``1.2.0``) names a release of
    ``model``. A git revision must be a commit that holds a release of ``model``; the
    workspace, another model's reference and a deregistered release are refused.
    """
    refs.check_name(model, "model name")
    if text not in (WORKSPACE, "", None) and refs.VERSION_RE.match(text if text.startswith("v") else f"v{text}"):
        text = f"{model}@{text if text.startswith('v') else 'v' + text}"
    spec = parse(text)
    if spec.kind == "workspace":
        raise UnknownRevision("the workspace is not a release: name the release to restore",
                              hint=f"e.g. `--to v1.0.0`, `--to {model}@latest` or a commit that holds a release")
    if spec.model is not None and spec.model != model:
        raise UnknownRevision(f"{text} names model '{spec.model}', not '{model}'",
                              hint=f"name a release of {model}, e.g. {model}@latest")
    releases = registry.active_releases(model)
    if not releases:
        close = known.suggestion(model, registry.models())
        raise UnknownRevision(f"model '{model}' has no releases{close}",
                              hint=f"release one first: git model release {model} v1.0.0")
    shown = ", ".join(str(r.version) for r in releases)
    if spec.kind == "release":
        release = registry.release(model, spec.version)
        if release is None or release.deregistered:
            what = "was deregistered" if release is not None else "does not exist"
            raise UnknownRevision(f"release {model}@{spec.version} {what}; releases of {model}: {shown}")
        return release
    rev = resolve(root, text, registry)
    release = rev.release if spec.kind != "git" else registry.release_at(model, rev.commit)
    if release is None:
        where = f"commit {rev.commit[:12]}" + (f" ({text})" if not rev.commit.startswith(text) else "")
        raise UnknownRevision(f"{where} holds no release of {model}; releases of {model}: {shown}",
                              hint=f"name a release, e.g. `--to {releases[-1].version}`")
    if release.deregistered:
        raise UnknownRevision(f"release {release.tag} was deregistered; releases of {model}: {shown}")
    return release
