"""``git model gc``: remove the DVC objects nothing in the registry or the workspace needs.

``dvc gc -w`` keeps the workspace's objects only, so it deletes the previous
production checkpoint -- the rollback target -- and every other release. Here
an object is kept when any release (deregistered ones too), any stage holder,
any version that ever held a stage, any eval set of those, or any file DVC
tracks in the workspace needs it; everything else in the local cache (and with
``cloud``, on the DVC remote) is listed with its size and, unless it is a dry
run, removed. The list is decided first, by one pure function, so a dry run
prints exactly what a real run removes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import holdings, project, remotes, store
from gitmodel import registry as registry_mod


@dataclass
class Removal:
    md5: str
    size: int | None
    where: str               # "cache" or "remote"

    def to_dict(self) -> dict:
        return {"md5": self.md5, "size": self.size, "where": self.where}


@dataclass
class GcResult:
    kept: int                                   # objects kept because something needs them
    removals: list[Removal] = field(default_factory=list)
    remote: str | None = None
    dry_run: bool = True

    @property
    def size(self) -> int:
        return sum(r.size or 0 for r in self.removals)

    def to_dict(self) -> dict:
        return {"dry_run": self.dry_run, "remote": self.remote, "kept": self.kept, "bytes": self.size,
                "removed" if not self.dry_run else "would_remove": [r.to_dict() for r in self.removals]}


def plan_removals(objects: dict[str, int | None], keep: set[str], where: str) -> list[Removal]:
    """Pure: the objects (md5 -> size) that nothing in ``keep`` needs, largest first."""
    return sorted((Removal(md5, size, where) for md5, size in objects.items() if md5 not in keep),
                  key=lambda r: (-(r.size or 0), r.md5))


def needed(root: Path) -> set[str]:
    """Every md5 the registry (all models, their whole history) or the workspace needs, directory
    objects with the files they list."""
    reg = registry_mod.load(root)
    keep = holdings.holdings(root, reg, reg.models(), history=True).md5s() | store.workspace_objects(root)
    for md5 in [m for m in keep if m.endswith(".dir")]:
        keep.update(store.dir_entries(root, md5))
    return keep


def gc(dry_run: bool = False, cloud: bool = False, remote: str | None = None, wait: float = 0.0,
       on_wait=None, start: Path | None = None) -> GcResult:
    """List (``dry_run``) or remove what nothing needs from the local cache, and with ``cloud`` from the
    DVC remote. Holds the repository lock, so no release or promotion lands in between."""
    from gitmodel import locking

    root = project.open_root(start)
    with locking.repository_lock(root / project.STATE_DIR, wait=wait, on_wait=on_wait):
        keep = needed(root)
        result = GcResult(kept=len(keep), dry_run=dry_run)
        result.removals = plan_removals(store.cache_objects(root), keep, "cache")
        if cloud:
            with remotes.open_remote(root, remote) as dvc_remote:
                result.remote = dvc_remote.name
                result.removals += plan_removals(dvc_remote.objects(), keep, "remote")
                if not dry_run:
                    dvc_remote.remove([r.md5 for r in result.removals if r.where == "remote"])
        if not dry_run:
            store.remove_cache_objects(root, [r.md5 for r in result.removals if r.where == "cache"])
    return result
