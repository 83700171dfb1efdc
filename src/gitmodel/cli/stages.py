"""Commands that move versions between stages: promote, end, rollback, status."""
from __future__ import annotations

import click

from gitmodel.cli.app import FRACTION, MODEL_NAME, STAGE_NAME, VERSION, cli, emit_json, json_option, wait_option


def _older(version: str, baseline: str | None) -> bool:
    from gitmodel.errors import GitModelError
    from gitmodel.refs import Version

    try:
        return baseline is not None and Version.parse(version) < Version.parse(baseline)
    except GitModelError:       # the baseline may be a commit, not a version
        return False


def _on_wait(holder: str) -> None:
    click.echo(f"Waiting for the repository lock held by {holder} ...", err=True)


@cli.command()
@click.argument("model", type=MODEL_NAME)
@click.argument("version", type=VERSION)
@click.option("--stage", "-s", type=STAGE_NAME, required=True, help="The stage to assign: prod, canary, staging or your own name.")
@click.option("--fraction", type=FRACTION, metavar="F",
              help="Share of traffic the stage serves, 0 < F <= 1: required for canary, refused for prod.")
@click.option("--accept-risk", metavar="RATIONALE",
              help="Promote to prod or canary although the gate fails (or a canary above 0.5 of traffic); "
                   "the rationale is recorded in the tag message.")
@click.option("--accept-unverified", metavar="RATIONALE",
              help="Promote although the release's metrics are unverified (not tied to the tracked md5); "
                   "the rationale is recorded in the tag message.")
@click.option("--rerun", is_flag=True,
              help="Let the gate evaluate the prod version on the candidate's eval set when their stored "
                   "results are not comparable (as `git model gate --rerun`).")
@click.option("--allow-local", is_flag=True,
              help="Promote to prod or canary although the version's weights are not on the DVC remote.")
@wait_option
@json_option
@click.pass_context
def promote(ctx, model, version, stage, fraction, accept_risk, accept_unverified, rerun, allow_local, wait,
            as_json) -> None:
    """Assign a stage to a released version (a GTO stage tag MODEL#STAGE#N).

    The annotated tag goes on the release's commit and records who, when,
    the gate result and, for canary, the traffic fraction; `gto show` and
    `dvc artifacts get --stage` read it. Promotion to prod first runs the
    gate of VERSION against the current prod version and refuses (exit 1,
    with the gate's report) when it fails, unless --accept-risk gives a
    rationale; so does promotion to canary, which serves real traffic. A
    canary above 0.5 of traffic is a cut-over and needs --accept-risk too.
    A canary promoted to prod leaves canary (an unassignment tag), so that a
    later rollback does not send it traffic again.
    The first promotion to prod has no holder to beat. For other stages the
    gate runs too, when there is a prod version, and its result is recorded
    without blocking. A running `git model serve` follows the new tag
    between requests. A release whose metrics are unverified (not
    tied to the tracked md5, nor reproduced by `git model verify`) is refused
    unless --accept-unverified gives a rationale. When a DVC remote is
    configured, prod and canary are refused to a version whose weights are
    not on it (`git model push` puts them there), unless --allow-local.

    \b
    Examples:
      git model promote chat v1.4.0 --stage canary --fraction 0.1
      git model promote chat v1.4.0 --stage prod
      git model promote chat v1.5.0 --stage prod --accept-risk "p95 latency +8 % accepted for the new tokenizer"
    """
    from gitmodel import stages

    result = stages.promote(model, version, stage, fraction=fraction, accept_risk=accept_risk, rerun=rerun,
                            wait=wait, on_wait=_on_wait, accept_unverified=accept_unverified,
                            allow_local=allow_local)
    if as_json:
        emit_json(result.to_dict())
        if result.refused:
            ctx.exit(1)
        return
    if result.refused:
        from gitmodel.cli.gate import render_gate_text

        render_gate_text(result.gate)      # the report `git model gate` prints
        click.echo(f"Refused: {model}@{result.version} did not pass the gate against {model}#prod "
                   f"({result.gate.baseline}); nothing was written.", err=True)
        hint = 'promote anyway with --accept-risk "why this is acceptable"'
        if _older(result.version, result.gate.baseline):
            hint += f"; to go back to an earlier version, `git model rollback {model} --to {result.version}`"
        click.echo(f"  hint: {hint}", err=True)
        ctx.exit(1)
    if result.unchanged:
        held = f" at fraction {result.fraction:g}" if result.fraction is not None else ""
        click.echo(f"{model}@{result.version} already holds {stage}{held} ({result.tag}): nothing to do.")
        return
    click.echo(f"Promoted {model}@{result.version} to {stage}: tag {result.tag} on {result.commit[:12]}")
    if result.fraction is not None:
        click.echo(f"  fraction: {result.fraction:g}")
    if result.gate is not None:
        click.echo(f"  gate:     {result.gate.summary}")
    if result.accepted_risk:
        click.echo(f"  accepted risk: {result.accepted_risk}")
    if result.canary_ended:
        click.echo(f"  canary:   ended ({', '.join(result.canary_ended)}): {result.version} graduated to prod")
    from gitmodel.cli.sharing import share_hint

    click.echo(share_hint(model, " ".join([result.tag, *result.canary_ended])))


@cli.command()
@click.argument("model", type=MODEL_NAME)
@click.option("--stage", "-s", type=STAGE_NAME, required=True, help="The stage to withdraw, e.g. canary.")
@click.option("--message", "-m", metavar="MSG", help="Why the stage ends; recorded in the tag message.")
@wait_option
@json_option
def end(model, stage, message, wait, as_json) -> None:
    """Withdraw a stage from the version holding it (GTO's unassignment tag MODEL#STAGE!#N).

    After it, `gto show`, `git model status` and `git model serve` see the
    stage empty: a canary ended this way gets no more traffic. A version that
    held the stage before and still has its assignment (a canary replaced by
    another) is withdrawn from it too, so the stage is really empty.
    Ending prod is refused: roll back or promote another version instead.

    \b
    Examples:
      git model end chat --stage canary
      git model end chat --stage canary -m "refusals doubled on live traffic"
    """
    from gitmodel import stages

    result = stages.end(model, stage, message=message, wait=wait, on_wait=_on_wait)
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"Ended {stage} of {model}@{result.version}: tag {result.tags[0]} on {result.commit[:12]}")
    for version, tag in list(zip(result.ended, result.tags))[1:]:
        click.echo(f"  also withdrawn: {model}@{version} ({tag}), which held {stage} before")
    if result.now:
        click.echo(f"  {stage} is still held by {result.now} (not a release: `gto unassign` removes it)")
    else:
        click.echo(f"  {stage} is now empty")
    click.echo(f"Share it: git push origin {' '.join(result.tags)}")


@cli.command()
@click.argument("model", type=MODEL_NAME)
@click.option("--to", "to", metavar="REV",
              help="The release to roll back to: a version (v1.2.0), MODEL@vX.Y.Z, MODEL@latest, MODEL#stage, or a "
                   "git revision that holds a release (default: the version that held prod before the current one).")
@click.option("--no-commit", is_flag=True,
              help="Restore the workspace, the .dvc / dvc.lock entry and metrics only: no commit, no prod tag.")
@click.option("--force", is_flag=True,
              help="Replace the workspace model even when it holds changes that are not in the DVC cache.")
@wait_option
@json_option
def rollback(model, to, no_commit, force, wait, as_json) -> None:
    """Put a released version back in the workspace, commit it and give it prod.

    The model's object is taken from the local DVC cache (else fetched from
    the default DVC remote, else the command stops before touching anything),
    its md5 verified, and put in place atomically: the model file holds the
    old bytes or the new ones, never a partial file. Links are used when
    `dvc config cache.type` allows and the file system supports them (found
    out before anything is removed), else a copy. The .dvc file or dvc.lock
    entry and metrics/<model>/ are restored from the release, committed as
    "Roll back MODEL to vX (was vY)" (only those paths), and prod is assigned
    to vX with a new stage tag. Repeated rollbacks walk the prod history like
    `git checkout -`. A workspace model with changes that are not in the DVC
    cache is refused (--force discards them); so are files it would overwrite
    or remove whose content git does not hold (untracked files in
    metrics/MODEL/, edits of the .dvc file or metrics, staged or not), named
    in the error, and a detached HEAD unless --no-commit. Running it again
    after it was interrupted completes it.

    \b
    Examples:
      git model rollback chat
      git model rollback chat --to v1.2.0
      git model rollback chat --to chat#staging
      git model rollback chat --to v1.2.0 --no-commit
    """
    from gitmodel import rollback as rollback_core

    result = rollback_core.rollback(model, to, no_commit=no_commit, force=force, wait=wait, on_wait=_on_wait)
    if as_json:
        emit_json(result.to_dict())
        return
    for note in result.notes:
        click.echo(f"Note: {note}", err=True)
    if result.unchanged:
        click.echo(f"{model} is already at {result.target} in the workspace, in git and in prod: nothing to do.")
        return
    head = "Restored" if no_commit else "Rolled back"
    click.echo(f"{head} {model} to {result.target} (was {result.was})")
    if result.method:
        how = {"copy": "copied", "hardlink": "hardlinked", "symlink": "symlinked", "reflink": "reflinked"}
        fetched = ", fetched from the DVC remote" if result.fetched else ""
        verified = "md5 verified" if result.verified == "hashed" else "md5 known good"
        click.echo(f"  {result.path}: md5 {result.md5} ({how[result.method]} from the DVC cache{fetched}; {verified})")
    else:
        click.echo(f"  {result.path}: md5 {result.md5} (already in the workspace)")
    if result.restored:
        click.echo(f"  restored: {', '.join(result.restored)}")
    if result.removed:
        click.echo(f"  removed:  {', '.join(result.removed)} (committed at HEAD, not part of {result.target})")
    if no_commit:
        click.echo("Not committed and prod not reassigned (--no-commit). To record it: "
                   f"git model rollback {model} --to {result.target}")
        return
    if result.commit:
        click.echo(f"  commit:   {result.commit[:12]} {result.message}")
    if result.tag:
        click.echo(f"  prod:     {result.target} (tag {result.tag})")
        from gitmodel.cli.sharing import share_hint

        click.echo(share_hint(model, result.tag, commit=True))


def _render_status(st) -> list[str]:
    lines = [f"{st.model} ({st.path})"]
    if st.workspace_md5 is None:
        tracked = f" (DVC tracks md5 {st.tracked_md5}: `dvc checkout` restores it)" if st.tracked_md5 else ""
        lines.append(f"  workspace:  missing{tracked}")
    else:
        lines.append(f"  workspace:  {st.release or 'unreleased'}, md5 {st.workspace_md5}")
        if st.modified:
            lines.append(f"              not what DVC tracks ({st.tracked_md5 or 'untracked'}): "
                         f"`git model add {st.path}` to track it")
    for h in st.stages:
        what = h.version or f"commit of {h.tag} (no release there)"
        fraction = f", fraction {h.fraction:g}" if h.fraction is not None else ""
        remote = {True: ", on the remote", False: ", NOT ON THE REMOTE (`git model push`)"}.get(h.on_remote, "")
        lines.append(f"  {h.stage + ':':11} {what}{fraction}  ({h.tag}, {h.assigned_at[:19].replace('T', ' ')})"
                     f"{remote}")
    if not st.stages:
        lines.append("  stages:     none")
    if st.tier:
        ran = [f"{cmd} {run.get('at', '?')[:16].replace('T', ' ')} ({run.get('verdict')})"
               for cmd, run in sorted(st.monitor.items()) if isinstance(run, dict)]
        lines.append(f"  monitor:    {st.tier['risk']} risk, {st.tier['schedule']}; last run here: "
                     + ("; ".join(ran) if ran else "never"))
    for i, m in enumerate(st.metrics):
        head = "  metrics:    " if i == 0 else " " * 14
        if m.orphaned:
            lines.append(f"{head}{m.evalset}: ORPHANED (no pair declares it: never read as a result; "
                         "`git model pairs prune` removes it)")
            continue
        lines.append(f"{head}{m.evalset}: " + (f"STALE ({m.reason})" if m.stale else "up to date")
                     + (f", UNVERIFIED ({m.unverified})" if m.unverified else ""))
    if not st.metrics:
        lines.append("  metrics:    none")
    return lines


@cli.command()
@click.argument("model", type=MODEL_NAME, required=False)
@json_option
def status(model, as_json) -> None:
    """Show which version each model has in the workspace, in each stage, and stale metrics.

    Per model: the md5 of the workspace checkpoint and the release it matches
    (or "unreleased"), the version holding each stage with its traffic
    fraction and whether its weights are on the DVC remote, per eval set
    whether the committed metrics are stale (they describe other weights, or
    an older eval set, than the workspace tracks), and the model's risk tier
    (params.yaml models.<name>.risk) with when drift and retrain-check last
    ran in this repository.

    \b
    Examples:
      git model status
      git model status chat --json
    """
    from gitmodel import status as status_mod

    statuses = status_mod.status(model)
    if as_json:
        emit_json(status_mod.to_dict(statuses))
        return
    if not statuses:
        click.echo("No models yet. Track one with: git model add models/<name>.gguf")
        return
    from gitmodel.sharing import LOCAL_ONLY_NOTE

    if statuses[0].remote is None:
        click.echo(f"Note: {LOCAL_ONLY_NOTE}", err=True)
    elif statuses[0].remote_error:
        click.echo(f"Note: could not check DVC remote '{statuses[0].remote}': {statuses[0].remote_error}", err=True)
    for i, st in enumerate(statuses):
        if i:
            click.echo("")
        for line in _render_status(st):
            click.echo(line)
