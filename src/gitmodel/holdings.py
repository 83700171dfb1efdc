"""What the registry holds in DVC: the objects (model weights, eval sets) of every release and stage holder.

A release is only as good as the objects its commit tracks: the checkpoint and
the eval sets its metrics were measured on. Push, fetch, the remote presence
check of a promotion and ``gc`` all ask the same question -- which md5s does
this registry need, and who needs each -- and this module is its one answer.
Everything is read from git objects (tags, ``.dvc`` files, ``dvc.lock``, metrics
JSON), never by checking anything out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import dvcyaml, gitobjects, provenance, refs, store
from gitmodel import registry as registry_mod
from gitmodel import results as results_mod
from gitmodel.errors import ModelNotFound
from gitmodel.revisions import Revision


@dataclass(frozen=True)
class Use:
    """One object one registry entry needs: ``holder`` is a release tag or ``MODEL#stage``."""

    model: str
    holder: str
    commit: str
    path: str
    md5: str

    def to_dict(self) -> dict:
        return {"model": self.model, "holder": self.holder, "commit": self.commit, "path": self.path,
                "md5": self.md5}


@dataclass
class Holdings:
    """The objects of some models' releases and stage holders, and the tags that point at them."""

    uses: list[Use] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)     # every registry tag of the models -> its commit

    def md5s(self) -> set[str]:
        return {u.md5 for u in self.uses}

    def holders_of(self, md5: str) -> list[str]:
        return list(dict.fromkeys(u.holder for u in self.uses if u.md5 == md5))

    def path_of(self, md5: str) -> str:
        return next(u.path for u in self.uses if u.md5 == md5)

    def tags_needing(self, md5s: set[str]) -> list[str]:
        """The tags whose commit needs one of ``md5s``: a teammate fetching them could not get the weights."""
        commits = {u.commit for u in self.uses if u.md5 in md5s}
        return sorted(t for t, c in self.tags.items() if c in commits)


def check_models(reg: registry_mod.Registry, models: list[str]) -> list[str]:
    """``models`` (every model of the registry when empty), each checked to have tags."""
    known = reg.models()
    for model in models:
        refs.check_name(model, "model name")
        if model not in known:
            from gitmodel import known as known_names

            raise ModelNotFound(f"model '{model}' has no release or stage tags"
                                + (known_names.suggestion(model, known) or
                                   f"; models with tags: {', '.join(known) or 'none'}"),
                                hint=f"release it first: git model release {model} v1.0.0")
    return list(dict.fromkeys(models)) or known


def _commits(reg: registry_mod.Registry, model: str, history: bool) -> dict[str, list[str]]:
    """commit -> the holders that need it: active releases, current stage holders, and every version that
    held prod (the rollback targets). ``history``: deregistered releases and every stage ever held too."""
    needed: dict[str, list[str]] = {}
    for r in reg.releases.get(model, []):
        if history or not r.deregistered:
            needed.setdefault(r.commit, []).append(r.tag)
    holders = {} if model in reg.conflicts else reg.holders(model)
    for stage, event in sorted(holders.items()):
        needed.setdefault(event.commit, []).append(f"{model}#{stage}")
    for event in reg.stage_events.get(model, []):
        if event.unassign or not (history or event.stage == registry_mod.PROD):
            continue
        current = f"{model}#{event.stage}"
        labels = needed.setdefault(event.commit, [])
        if current not in labels and f"{current} (before)" not in labels:
            labels.append(f"{current} (before)")
    return needed


def holdings(root: Path, reg: registry_mod.Registry, models: list[str], history: bool = False) -> Holdings:
    """The objects the registry's entries for ``models`` need, read from git objects."""
    root = Path(root)
    found = Holdings()
    for tag in gitobjects.list_tags(root):
        parsed = refs.parse_tag(tag["name"])
        if parsed is not None and parsed.name in models:
            found.tags[tag["name"]] = tag["commit"]
    with gitobjects.ObjectReader(root) as reader:
        for model in models:
            needed = _commits(reg, model, history)
            if not needed:
                continue
            commits = list(needed)
            revs = [Revision(c, c) for c in commits]
            docs = results_mod.results_at_many(root, revs, model=model, reader=reader, validate=False)
            paths = {c: [dvcyaml.model_path(model)] for c in commits}
            for c, results in zip(commits, docs):
                for r in results:
                    paths[c] += provenance.tracked_paths(r.doc)
            md5s = store.tracked_md5s(root, commits, [p for ps in paths.values() for p in ps], reader, lenient=True)
            for c in commits:
                for path in dict.fromkeys(paths[c]):
                    md5 = md5s[c].get(path)
                    if md5:
                        found.uses += [Use(model, holder, c, path, md5) for holder in needed[c]]
    return found


def commit_holdings(root: Path, model: str, commit: str, holder: str) -> Holdings:
    """The objects one commit needs for ``model`` (its weights, the eval sets of its metrics)."""
    root = Path(root)
    with gitobjects.ObjectReader(root) as reader:
        [results] = results_mod.results_at_many(root, [Revision(commit, commit)], model=model, reader=reader,
                                                validate=False)
        paths = list(dict.fromkeys([dvcyaml.model_path(model)] +
                                   [p for r in results for p in provenance.tracked_paths(r.doc)]))
        md5s = store.tracked_md5s(root, [commit], paths, reader, lenient=True)[commit]
    return Holdings([Use(model, holder, commit, p, md5s[p]) for p in paths if md5s.get(p)])
