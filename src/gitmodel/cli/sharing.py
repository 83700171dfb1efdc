"""Commands that share the registry with a team: push, fetch, gc."""
from __future__ import annotations

import click

from gitmodel.cli.app import MODEL_NAME, cli, emit_json, json_option, plural, wait_option

remote_option = click.option("--remote", "-r", metavar="NAME",
                             help="The DVC remote (default: the one `dvc remote default` names).")
git_remote_option = click.option("--git-remote", default="origin", show_default=True, metavar="NAME",
                                 help="The git remote the tags go to / come from.")


def size_text(size: int | None) -> str:
    if size is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""   # pragma: no cover


def progress_printer(verb: str):
    """A transfer's progress on stderr, one line rewritten in place on a terminal."""
    import sys

    tty = sys.stderr.isatty()

    def report(done: int, total: int) -> None:
        if tty:
            click.echo(f"\r{verb} {done}/{total} objects", err=True, nl=done >= total)
        elif done >= total or done == 1:
            click.echo(f"{verb} {done}/{total} objects", err=True)

    return report


@cli.command()
@click.argument("models", nargs=-1, type=MODEL_NAME)
@remote_option
@git_remote_option
@click.option("--dry-run", is_flag=True, help="Show what would be pushed; transfer nothing.")
@json_option
def push(models, remote, git_remote, dry_run, as_json) -> None:
    """Push releases and stages with their weights: tags to git, objects to DVC.

    For MODELS (default: every model with tags), the objects (checkpoint and
    the eval sets of its metrics) of every release, every current stage
    holder and every version that held prod go to the DVC remote, taken from
    the local cache without checking anything out; each is then checked on
    the remote as `dvc status -c` sees it. Then the model's release and
    stage tags go to the git remote -- never forced: a tag that exists there
    with another target stops the push before anything moves. A tag whose
    objects could not reach the remote is held back, and the command fails
    naming the release and md5. Running it again transfers only what is
    missing (a second run says there is nothing to push); after a failure
    or Ctrl-C it completes what was left.

    \b
    Examples:
      git model push
      git model push chat --remote storage
      git model push --dry-run
    """
    from gitmodel import sharing

    result = sharing.push(list(models), remote=remote, git_remote=git_remote, dry_run=dry_run,
                          progress=None if as_json else progress_printer("Pushing"))
    if as_json:
        emit_json(result.to_dict())
        return
    plan = result.plan
    where = f"DVC remote '{result.remote}' ({result.url}) and git remote '{result.git_remote}'"
    models = ", ".join(result.models) or "the registry (no release or stage tags yet)"
    if result.nothing_to_do:
        click.echo(f"Nothing to push: {plural(len(plan.present), 'object')} and {plural(len(plan.tags_present), 'tag')} "
                   f"of {models} are already on {where}.")
        return
    objects = plan.to_push if dry_run else result.pushed
    head = "Would push" if dry_run else "Pushed"
    size = sum(o.size or 0 for o in objects)
    click.echo(f"{head} {plural(len(objects), 'object')} ({size_text(size)}) and "
               f"{plural(len(plan.tags_to_push if dry_run else result.tags_pushed), 'tag')} to {where}")
    for o in objects:
        click.echo(f"  {o.md5}  {size_text(o.size):>10}  {o.path}  ({', '.join(o.holders)})")
    tags = plan.tags_to_push if dry_run else result.tags_pushed
    if tags:
        click.echo(f"  tags: {', '.join(tags)}")
    if plan.present or plan.tags_present:
        click.echo(f"Already there: {plural(len(plan.present), 'object')}, {plural(len(plan.tags_present), 'tag')}")
    if not dry_run:
        click.echo(f"Verified: every object of {models} is on DVC remote '{result.remote}'.")


@cli.command()
@click.argument("models", nargs=-1, type=MODEL_NAME)
@remote_option
@git_remote_option
@json_option
def fetch(models, remote, git_remote, as_json) -> None:
    """Fetch releases and stages with their weights into this machine.

    The release and stage tags of MODELS (default: every model) come from
    the git remote (never forced: a tag that exists here with another target
    stops the fetch), and the objects of every release, current stage holder
    and version that held prod come from the DVC remote into the local DVC
    cache, without checking anything out. Afterwards `git model rollback`,
    `verify` and `gate --rerun` work without network access.

    \b
    Examples:
      git model fetch
      git model fetch chat --remote storage
    """
    from gitmodel import sharing

    result = sharing.fetch(list(models), remote=remote, git_remote=git_remote,
                           progress=None if as_json else progress_printer("Fetching"))
    if as_json:
        emit_json(result.to_dict())
        return
    size = sum(o.size or 0 for o in result.fetched)
    cached = f"; {plural(result.cached, 'object')} already in the cache" if result.cached else ""
    click.echo(f"Fetched {plural(len(result.tags_fetched), 'tag')} from git remote '{result.git_remote}' and "
               f"{plural(len(result.fetched), 'object')} ({size_text(size)}) from DVC remote '{result.remote}'"
               f"{cached}.")
    for o in result.fetched:
        click.echo(f"  {o.md5}  {size_text(o.size):>10}  {o.path}  ({', '.join(o.holders)})")
    models = ", ".join(result.models) or "the registry (no release or stage tags yet)"
    click.echo(f"Every release and stage holder of {models} is in the local DVC cache.")


def _render_gc(result, dry_run: bool) -> None:
    if not result.removals:
        click.echo(f"Nothing to remove: every object is needed ({plural(result.kept, 'object')} kept: releases, "
                   "stage holders, their eval sets and the workspace).")
        return
    head = "Would remove" if dry_run else "Removed"
    click.echo(f"{head} {plural(len(result.removals), 'object')} ({size_text(result.size)}) that no release, "
               "stage holder, eval set of a release or workspace file needs:")
    for r in result.removals:
        where = "local cache" if r.where == "cache" else f"DVC remote '{result.remote}'"
        click.echo(f"  {r.md5}  {size_text(r.size):>10}  {where}")


@cli.command()
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option("--cloud", is_flag=True, help="Remove the same unneeded objects from the DVC remote too.")
@remote_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@wait_option
@json_option
def gc(dry_run, cloud, remote, yes, wait, as_json) -> None:
    """Remove DVC objects that no release, stage holder or workspace file needs.

    Keeps the objects of every release (deregistered ones too), every
    current stage holder and every version that ever held a stage
    (prod, canary and the previous prod holder among them), the eval sets
    of their metrics, and every file DVC tracks in the workspace; lists
    the rest with sizes and removes it from the local cache, and with
    --cloud from the DVC remote. Objects that only other branches' commits
    track are removed, as `dvc gc -w` does. --dry-run prints exactly what a
    real run removes. Asks before removing unless --yes.

    \b
    Examples:
      git model gc --dry-run
      git model gc --yes
      git model gc --cloud --dry-run
    """
    from gitmodel import gc as gc_core

    plan = gc_core.gc(dry_run=True, cloud=cloud, remote=remote, wait=wait)
    if dry_run or not plan.removals:
        if as_json:
            emit_json(plan.to_dict())
        else:
            _render_gc(plan, dry_run=True)
        return
    if not yes:
        _render_gc(plan, dry_run=True)
        click.confirm("Remove them?", abort=True, err=True)
    result = gc_core.gc(dry_run=False, cloud=cloud, remote=remote, wait=wait)
    if as_json:
        emit_json(result.to_dict())
    else:
        _render_gc(result, dry_run=False)


def share_hint(model: str, tag: str, commit: bool = False) -> str:
    """The last line of release, promote and rollback: how the new tag (and ``commit``: the new commit)
    reaches the team, weights included."""
    from gitmodel import project, sharing

    branch = "git push && " if commit else ""
    if sharing.local_only(project.open_root()):
        return f"Note: {sharing.LOCAL_ONLY_NOTE}. Share the tag with: {branch}git push origin {tag}"
    return f"Share it: {branch}git model push {model}"
