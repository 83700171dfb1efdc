"""What `git model serve` serves, and how a request finds its version: the stage tags, followed.

The routes come from the registry as GTO reads it: the holder of ``MODEL#prod`` takes the traffic,
and when ``MODEL#canary`` holds another version with a ``Fraction``, that version takes that share.
Which arm a request goes to is a pure function (:func:`choose`): a request that names a ``user`` goes
by a hash of it, so a user stays on one version while the routes stay the same; one without goes by a
seeded random draw.

A :class:`Deployment` follows the tags: :meth:`Deployment.refresh` (run by the poller and on SIGHUP)
reads the registry again, loads the checkpoints of new holders while the old ones keep serving, then
swaps the routes between requests. A request takes the routes and a hold on its model in one step
(:meth:`Deployment.checkout`), so a switch never closes the weights under it. A version that fails to
load leaves the arm it was meant for on its old version; why is kept for ``/health``.
"""
from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import dvcyaml, gitrepo, project, prodlog, store
from gitmodel import registry as registry_mod
from gitmodel.errors import GitModelError
from gitmodel.registry import CANARY, PROD
from gitmodel.runners.base import RunSettings
from gitmodel.servemodels import LoadedModel, materialise

log = logging.getLogger("gitmodel.serve")

CACHE_FOLDER = "serve-cache"    # under the project's state folder: never the workspace


@dataclass(frozen=True)
class Arm:
    """A version serving one stage."""

    stage: str
    version: str
    md5: str
    tag: str

    def to_dict(self) -> dict:
        return {"stage": self.stage, "version": self.version, "md5": self.md5, "tag": self.tag}


@dataclass(frozen=True)
class Routes:
    """Who serves: prod, and a canary with its share of traffic (or none)."""

    prod: Arm | None
    canary: Arm | None = None
    fraction: float = 0.0

    def arms(self) -> list[Arm]:
        return [a for a in (self.prod, self.canary) if a is not None]

    def to_dict(self) -> dict:
        return {"prod": self.prod.to_dict() if self.prod else None,
                "canary": self.canary.to_dict() if self.canary else None, "fraction": self.fraction}


def user_hash(user: str) -> str:
    """The hash a sticky user is routed (and logged) by: the name itself is not kept."""
    return hashlib.sha256(user.encode("utf-8")).hexdigest()[:16]


def choose(routes: Routes, user_key: str | None, rng: random.Random) -> Arm | None:
    """The arm a request goes to. With a user hash: the hash's position in [0, 1) against the canary's
    fraction, so a user stays on one arm; without: a draw from ``rng``."""
    if routes.canary is None or routes.fraction <= 0:
        return routes.prod
    if routes.prod is None:
        return routes.canary
    point = int(user_key[:8], 16) / 0x100000000 if user_key else rng.random()
    return routes.canary if point < routes.fraction else routes.prod


def plan_routes(model: str, holders: dict[str, registry_mod.StageEvent], md5_of) -> Routes:
    """The routes the stage holders give (pure but for ``md5_of(event) -> md5 | None``, the tracked
    md5 at the holder's commit). A canary on the prod version, without a fraction, or whose weights
    are prod's, takes no share: it would serve the same answers."""
    prod_event, canary_event = holders.get(PROD), holders.get(CANARY)
    prod = _arm(PROD, prod_event, md5_of)
    canary = _arm(CANARY, canary_event, md5_of)
    fraction = canary_event.fraction if canary_event is not None else None
    if canary is None or not fraction or (prod is not None and canary.md5 == prod.md5):
        return Routes(prod)
    return Routes(prod, canary, min(max(fraction, 0.0), 1.0))


def _arm(stage: str, event: registry_mod.StageEvent | None, md5_of) -> Arm | None:
    if event is None:
        return None
    md5 = md5_of(event)
    if md5 is None:
        return None
    version = str(event.version) if event.version else event.commit[:12]
    return Arm(stage, version, md5, event.tag)


def tag_fingerprint(common_dir: Path) -> tuple | None:
    """What changes whenever a tag is written or deleted: the file times of ``refs/tags`` (a folder per
    ``/`` in a name) and of ``packed-refs``. A poll that finds it unchanged costs a few ``stat`` calls,
    not a git process (which, several times a second on a small machine, would slow the answers). None
    when tags are not kept as files (reftable): then every poll reads them."""
    if (common_dir / "reftable").exists():
        return None
    marks = []
    tags = common_dir / "refs" / "tags"
    for folder in [tags, *(p for p in tags.rglob("*") if p.is_dir())] if tags.is_dir() else []:
        marks.append((str(folder), folder.stat().st_mtime_ns))
    packed = common_dir / "packed-refs"
    if packed.exists():
        st = packed.stat()
        marks.append(("packed-refs", st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(marks)


@dataclass
class Status:
    """What ``/health`` says."""

    model: str
    routes: Routes
    refreshed_at: str | None = None
    problems: dict[str, str] = field(default_factory=dict)     # md5 or "registry" -> why it is not served

    def to_dict(self) -> dict:
        ok = self.routes.prod is not None
        return {"status": "ok" if ok else "unavailable", "model": self.model, **self.routes.to_dict(),
                "refreshed_at": self.refreshed_at, "problems": dict(self.problems)}


class Deployment:
    """The routes of one model and the checkpoints behind them, following the stage tags."""

    def __init__(self, model: str, root: Path | None = None, cache_folder: Path | None = None, seed: int = 0):
        self.root = project.open_root(root)
        self.model = model
        self.cache_folder = Path(cache_folder) if cache_folder else self.root / project.STATE_DIR / CACHE_FOLDER
        self._lock = threading.Lock()          # routes, models and their users
        self._refreshing = threading.Lock()    # one refresh at a time
        self._routes = Routes(None)
        self._models: dict[str, LoadedModel] = {}
        self._failed: dict[str, str] = {}      # md5 -> why it could not be loaded (not retried until SIGHUP)
        self._rng = random.Random(seed)
        self.status = Status(model, self._routes)
        common = gitrepo.run_git(self.root, "rev-parse", "--git-common-dir").decode().strip()
        self._git_dir = (self.root / common).resolve()
        self._seen: tuple | None = None        # the tag fingerprint the routes were planned on

    # -- what requests use ------------------------------------------------------------------------

    @property
    def routes(self) -> Routes:
        return self._routes

    def checkout(self, user_key: str | None) -> tuple[Arm, LoadedModel] | None:
        """The arm for a request and its model, held until :meth:`checkin`; None when nothing serves."""
        with self._lock:
            arm = choose(self._routes, user_key, self._rng)
            if arm is None:
                return None
            loaded = self._models[arm.md5]
            loaded.acquire()
            return arm, loaded

    def checkin(self, loaded: LoadedModel) -> None:
        with self._lock:
            done = loaded.release()
        if done:
            loaded.close()

    # -- following the tags -----------------------------------------------------------------------

    def refresh(self, retry_failed: bool = False) -> bool:
        """Read the stage tags and switch to their holders; True when the routes changed.

        New checkpoints are loaded before the switch, outside the lock, while requests go on. An arm
        whose new version cannot be materialised or loaded keeps its old version (none for a new
        canary); the reason stays in :attr:`status` until that version loads."""
        with self._refreshing:
            if retry_failed:
                self._failed.clear()
            seen = tag_fingerprint(self._git_dir)
            if seen is not None and seen == self._seen and not retry_failed:
                return False
            try:
                wanted = self._plan()
            except GitModelError as e:
                self.status.problems["registry"] = e.message
                log.error("cannot read the stage tags of %s: %s", self.model, e.message)
                return False
            self.status.problems.pop("registry", None)
            # a tag written within the file system's time granularity of this read could leave the
            # same times behind: a fingerprint is trusted only once it is a second old
            self._seen = seen if seen and max(m[1] for m in seen) < time.time_ns() - 1_000_000_000 else None
            current = self._routes
            prod = self._ready(wanted.prod, current.prod)
            canary = self._ready(wanted.canary, current.canary) if wanted.canary else None
            fraction = wanted.fraction if canary == wanted.canary else current.fraction
            routes = Routes(prod, canary, fraction if canary is not None else 0.0)
            self.status.refreshed_at = prodlog.timestamp()
            if routes == current:
                return False
            self._switch(routes)
            log.warning("now serving %s: %s", self.model, describe(routes))
            return True

    def _plan(self) -> Routes:
        reg = registry_mod.load(self.root)
        holders = reg.holders(self.model)
        rels = [dvcyaml.model_path(self.model)]
        commits = sorted({e.commit for e in holders.values()})
        md5s = store.tracked_md5s(self.root, commits, rels) if commits else {}
        return plan_routes(self.model, holders, lambda e: md5s.get(e.commit, {}).get(rels[0]))

    def _ready(self, arm: Arm | None, fallback: Arm | None) -> Arm | None:
        """``arm`` when its checkpoint is loaded (loading it now if need be), else ``fallback``."""
        if arm is None:
            return None
        if arm.md5 in self._models:
            return arm
        if arm.md5 in self._failed:
            return fallback
        try:
            path = materialise(self.root, arm.md5, self.cache_folder)
            loaded = LoadedModel.load(path, arm.md5, *self._settings(arm))
        except (GitModelError, OSError) as e:     # OSError: the cache folder's disk, say, is full
            reason = e.message if isinstance(e, GitModelError) else str(e)
            why = f"{self.model}@{arm.version} ({arm.stage}, md5 {arm.md5}) could not be loaded: {reason}"
            self._failed[arm.md5] = why
            self.status.problems[arm.md5] = why
            log.error("%s; %s", why, f"still serving {fallback.version}" if fallback else "not serving it")
            return fallback
        self.status.problems.pop(arm.md5, None)
        with self._lock:
            self._models[arm.md5] = loaded
        return arm

    def _settings(self, arm: Arm) -> tuple[RunSettings, list[str]]:
        """The eval-time settings of the version's stored results (params.yaml's when it has none or
        they cannot be read), and the labels its eval sets score."""
        from gitmodel import params, revisions
        from gitmodel import results as results_mod

        try:
            rev = revisions.resolve(self.root, f"{self.model}@{arm.version}")
            found = results_mod.results_at(self.root, rev, self.model)
        except GitModelError:
            found = []
        labels = sorted({label for r in found for label in (r.doc["metrics"].get("labels") or {})})
        if found:
            try:
                return RunSettings.from_params(dict(params.EVAL_DEFAULTS, **found[0].doc["params"])), labels
            except (TypeError, ValueError, AttributeError) as e:
                log.warning("%s@%s: its results' eval params cannot be read (%s); serving with params.yaml's",
                            self.model, arm.version, e)
        return RunSettings.from_params(params.eval_params(self.root, model=self.model)), labels

    def _switch(self, routes: Routes) -> None:
        serving = {a.md5 for a in routes.arms()}
        closing = []
        with self._lock:
            self._routes = routes
            self.status.routes = routes
            for md5 in [m for m in self._models if m not in serving]:
                loaded = self._models.pop(md5)
                if loaded.retire():
                    closing.append(loaded)
        for loaded in closing:
            loaded.close()

    def close(self) -> None:
        with self._lock:
            models, self._models = list(self._models.values()), {}
            self._routes = Routes(None)
        for loaded in models:
            loaded.close()


def describe(routes: Routes) -> str:
    if routes.prod is None:
        return "nothing (no version holds prod)"
    text = f"prod {routes.prod.version}"
    if routes.canary is not None:
        text += f", canary {routes.canary.version} at {routes.fraction:g} of traffic"
    return text


class Follower:
    """Refreshes a deployment every ``poll`` seconds, and at once when :meth:`wake` is called (SIGHUP)."""

    def __init__(self, deployment: Deployment, poll: float):
        self.deployment = deployment
        self.poll = poll
        self._wake = threading.Event()
        self._retry = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gitmodel-follow", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Re-read the tags now, and try again the versions that failed to load."""
        self._retry = True
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll if self.poll > 0 else None)
            if self._stop.is_set():
                return
            self._wake.clear()
            retry, self._retry = self._retry, False
            started = time.monotonic()
            try:
                self.deployment.refresh(retry_failed=retry)
            except Exception:       # the follower must outlive any one failed refresh
                log.exception("refreshing the routes of %s failed", self.deployment.model)
            log.debug("refresh took %.3f s", time.monotonic() - started)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
