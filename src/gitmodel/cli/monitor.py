"""Monitoring production at the command line: drift, retrain-check, sample, review import.
Rendering only: the cores are monitoring.py, retrain.py and review.py."""
from __future__ import annotations

from datetime import datetime, timezone

import click

from gitmodel.cli.app import EVALSET_NAME, MODEL_NAME, VERSION, cli, emit_json, json_option, plural
from gitmodel.cli.render import code, md_cell, md_table, number, table, whole_percents

DRIFT_MARKER = "<!-- git-model-drift -->"


class _Time(click.ParamType):
    """An ISO 8601 date or time (a date is its midnight UTC; no offset is UTC)."""

    name = "time"

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        from gitmodel import prodlog

        try:
            return prodlog.parse_timestamp(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date or time (e.g. 2026-11-01 or 2026-11-01T12:00:00Z)",
                      param, ctx)


TIME = _Time()


def log_options(f):
    f = click.option("--strict", is_flag=True, help="Make a malformed log line an error (default: counted, "
                                                    "the first few named by file:line, and left out).")(f)
    f = click.option("--until", type=TIME, help="Only records before this time (ISO 8601; a date is its midnight UTC).")(f)
    f = click.option("--since", type=TIME, help="Only records from this time on (ISO 8601).")(f)
    return f


def _check_window(since, until) -> None:
    if since is not None and until is not None and since >= until:
        raise click.BadParameter(f"--since {since.isoformat()} is not before --until {until.isoformat()}",
                                 param_hint="'--since' / '--until'")


def _summary(entry: dict) -> str:
    if "shares" in entry:
        named = dict(entry["shares"])
        unseen_share = named.pop("(unseen)", 0)
        total = sum(entry.get("unseen", {}).values())
        for value, count in entry.get("unseen", {}).items():     # the new values by name
            named[f"{value} (new)"] = unseen_share * count / total
        percents = whole_percents(named)
        shares = sorted(named.items(), key=lambda kv: -kv[1])[:3]
        text = ", ".join(f"{k} {percents[k]}%" for k, _ in shares) or "-"
        return text + (" ..." if len(named) > 3 else "")
    if entry.get("mean") is None:
        return "-"
    return f"mean {number(entry['mean'], 1)} ({number(entry['min'], 2)}-{number(entry['max'], 2)})"


def _drift_rows(result, md: bool = False) -> list[list[str]]:
    rows = []
    for s in result.signals:
        band = "info" if s.informational else s.psi.band
        if s.psi.few_samples and s.psi.band != "no data":
            band += " (few samples)"
        psi = "-" if s.psi.value is None else number(s.psi.value, 4)
        name = code(s.signal) if md else s.signal
        cells = [name, psi, band, _summary(s.baseline), _summary(s.current)]
        rows.append([md_cell(c) if md and i else c for i, c in enumerate(cells)])
    return rows


@cli.command()
@click.argument("model", type=MODEL_NAME)
@click.option("--log", "logs", multiple=True, metavar="PATH",
              help="Production log: a JSONL file (gzip allowed), a folder of them or a glob; repeatable.")
@click.option("--baseline", metavar="REF", help="Compare with what this revision answered on its eval sets "
                                                "(default: MODEL#prod at its release).")
@click.option("--baseline-log", "baseline_logs", multiple=True, metavar="PATH",
              help="Compare with a production window instead (files, folders, globs; repeatable).")
@click.option("--version", "version", type=VERSION, help="Only records answered by this model version (vX.Y.Z).")
@log_options
@click.option("--fail-on", type=click.Choice(["watch", "alert"]), default="alert", show_default=True,
              help="Exit 1 when a signal reaches this band.")
@click.option("--save-profile", metavar="FILE", help="Write the window's profile (JSON; profiles add up).")
@click.option("--profile", "profile_files", multiple=True, metavar="FILE",
              help="Read a saved profile instead of logs (repeatable: the profiles are added).")
@click.option("--sql", "sql_table", metavar="TABLE",
              help="Print the standard SQL query that computes the window's profile from TABLE (logs in a "
                   "warehouse); save its result as CSV or JSON and read it back with --profile.")
@click.option("--workers", type=click.IntRange(min=1), metavar="N",
              help="Processes that read big logs (default: every core; 1 reads them in this process).")
@click.option("--md", is_flag=True, help="Print GitHub Markdown (for an issue or a comment).")
@json_option
def drift(model, logs, baseline, baseline_logs, version, since, until, strict, fail_on, save_profile,
          profile_files, sql_table, workers, md, as_json) -> None:
    """PSI of production inputs and outputs against a baseline, signal by signal.

    Signals: input length (characters, words), input category and the fields
    of drift.fields; output length, label, confidence, refusals, and the
    version that answered (shown, never a verdict). Bins are the baseline's
    (10 quantiles of a continuous signal, one per category). Bands come from
    params.yaml drift: (stable < 0.1 <= watch < 0.2 <= alert). Exits 1 when a
    signal reaches --fail-on (alert by default).

    \b
    Example:
      git model drift chat --log logs/
      git model drift chat --log 'logs/*.jsonl.gz' --since 2026-11-01 --until 2026-11-08 --json
      git model drift chat --log logs/ --baseline-log logs/2026-10/
      git model drift chat --log logs/chat-2026-11-02.jsonl --save-profile day.json
      git model drift chat --sql prod_logs --since 2026-11-01 > profile.sql
    """
    from gitmodel import monitoring

    _check_window(since, until)
    if baseline and baseline_logs:
        raise click.UsageError("--baseline and --baseline-log name two baselines: give one")
    if sql_table:
        if logs or profile_files or save_profile:
            raise click.UsageError("--sql prints a query: it reads no --log or --profile and saves no profile")
        query = monitoring.sql(model, sql_table, baseline=baseline, baseline_logs=baseline_logs, version=version,
                               since=since, until=until)
        if as_json:
            emit_json(query.to_dict())
        else:
            click.echo(query.query, nl=False)
        return
    if not logs and not profile_files:
        raise click.UsageError("give the logs (--log PATH) or saved profiles (--profile FILE)")
    result = monitoring.drift(model, logs, baseline=baseline, baseline_logs=baseline_logs, version=version,
                              since=since, until=until, profile_files=profile_files, save_profile=save_profile,
                              strict=strict, fail_on=fail_on, workers=workers)
    if as_json:
        emit_json(result.to_dict())
    elif md:
        click.echo("\n".join(_drift_md(result)))
    else:
        _drift_text(result)
    if result.fails:
        raise SystemExit(1)


def _drift_text(result) -> None:
    cur = result.current
    click.echo(f"Drift of {result.model}: {plural(cur.n, 'record')} ({cur.first or '?'} .. {cur.last or '?'}) "
               f"against {result.baseline} ({plural(result.baseline_n, 'record')})")
    click.echo(table(_drift_rows(result), ["signal", "PSI", "band", "baseline", "current"]))
    click.echo(f"PSI bands: stable < watch <= alert (params.yaml drift:); {result.signals[0].psi.smoothing}")
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    if result.saved_profile:
        click.echo(f"Wrote the window's profile to {result.saved_profile}")
    alerts = [s.signal for s in result.signals if not s.informational and s.psi.band == "alert"]
    watch = [s.signal for s in result.signals if not s.informational and s.psi.band == "watch"]
    verdict = {"alert": f"ALERT: {', '.join(alerts)} moved beyond the alert band",
               "watch": f"WATCH: {', '.join(watch)} moved; not yet an alert",
               "stable": "stable: no signal moved beyond the watch band"}[result.verdict]
    click.echo(f"Verdict: {verdict}")


def _drift_md(result) -> list[str]:
    cur = result.current
    lines = [DRIFT_MARKER, f"### Drift of `{result.model}`: {result.verdict}", "",
             f"{plural(cur.n, 'record')} ({cur.first or '?'} .. {cur.last or '?'}) against "
             f"{md_cell(result.baseline)} ({plural(result.baseline_n, 'record')})", ""]
    lines += md_table(_drift_rows(result, md=True), ["signal", "PSI", "band", "baseline", "current"],
                      ("left", "right", "left", "left", "left"))
    lines += ["", f"Bands from params.yaml `drift:`; {result.signals[0].psi.smoothing}."]
    lines += [f"- warning: {md_cell(w, 400)}" for w in result.warnings]
    return lines


@cli.command("retrain-check")
@click.argument("model", type=MODEL_NAME)
@click.option("--log", "logs", multiple=True, metavar="PATH",
              help="Production logs for the input drift rule (files, folders, globs; repeatable).")
@click.option("--evalset", type=EVALSET_NAME, help="Check accuracy on this eval set only (default: every eval "
                                                   "set prod was released with).")
@log_options
@json_option
def retrain_check(model, logs, evalset, since, until, strict, as_json) -> None:
    """Say whether the prod checkpoint should be retrained, rule by rule.

    Rules (thresholds in params.yaml retrain: and the model's risk tier):
    input PSI of the logs at or above retrain.input_psi; accuracy on the eval
    set as it is now more than the tier's accuracy_drop below the metrics of
    the release (prod is re-evaluated from the DVC cache when the eval set
    changed); the dataset in prod's lineage grown by retrain.data_growth;
    human-review means below their floors; a retrain.events entry after prod's
    training date. Exits 1 with "retrain" and the reasons when a rule fires,
    0 with "do not retrain" and why otherwise. It never retrains.

    \b
    Example:
      git model retrain-check chat --log logs/ --evalset support
    """
    from gitmodel import retrain

    _check_window(since, until)
    result = retrain.retrain_check(model, logs, evalset=evalset, since=since, until=until, strict=strict)
    if as_json:
        emit_json(result.to_dict())
    else:
        tier = result.tier
        click.echo(f"Retrain check of {result.prod}: {tier['risk']}-risk model "
                   f"(accuracy drop allowed {number(tier['accuracy_drop'], 4)}, monitored {tier['schedule']})")
        rows = [[r.name, r.verdict, r.why] for r in result.rules]
        click.echo(table(rows, ["rule", "verdict", "figure"]))
        if result.retrain:
            click.echo("Verdict: retrain, because " + "; ".join(r.why for r in result.rules if r.verdict == "fires"))
        else:
            checked = [r for r in result.rules if r.verdict == "holds"]
            click.echo(f"Verdict: do not retrain: {plural(len(checked), 'rule')} checked and none fires"
                       + (f" ({plural(len(result.rules) - len(checked), 'rule')} not checked)"
                          if len(checked) < len(result.rules) else ""))
    if result.retrain:
        raise SystemExit(1)


@cli.command()
@click.argument("model", type=MODEL_NAME)
@click.option("--log", "logs", multiple=True, metavar="PATH", help="Sample production logs (repeatable).")
@click.option("--evalset", type=EVALSET_NAME, help="Sample the eval set's examples with the model's stored outputs.")
@click.option("--n", "n", type=click.IntRange(min=1), required=True, help="How many requests to sample.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the draw (the same seed, the same sample).")
@click.option("--stratify", metavar="FIELD", help="Share the sample equally between the values of this field "
                                                  "(label, category, version...).")
@click.option("-o", "--output", "out", required=True, metavar="FILE", help="The JSONL sample to write.")
@log_options
@json_option
def sample(model, logs, evalset, n, seed, stratify, out, since, until, strict, as_json) -> None:
    """Write a sample of requests for human review, with the rubric.

    The first line holds the rubric of params.yaml review.rubric (criteria,
    scale, guidance) and the sample's ids; each other line one request with
    empty scores and reviewer, and the version that answered it (a log
    line's version; with --evalset, the md5 of the checkpoint whose stored
    outputs are sampled, and its release). Reviewers fill them in; `git
    model review import` reads them back. The draw is uniform (per stratum
    with --stratify) and streams the logs.

    \b
    Example:
      git model sample chat --log logs/ --n 50 --stratify label -o review.jsonl
    """
    from gitmodel import review

    if bool(logs) == bool(evalset):
        raise click.UsageError("sample from the logs (--log PATH) or from an eval set (--evalset E): one of them")
    _check_window(since, until)
    result = review.sample(model, out, n=n, logs=logs, evalset=evalset, seed=seed, stratify=stratify,
                           since=since, until=until, strict=strict)
    if as_json:
        emit_json(result.to_dict())
        return
    strata = f" ({', '.join(f'{k} {v}' for k, v in result.strata.items())})" if result.strata else ""
    click.echo(f"Wrote {result.path}: {plural(result.n, 'request')} of {result.population:,}{strata}. "
               f"Next: fill in scores and reviewer, then `git model review import {result.path}`")


@cli.group("review")
def review_group() -> None:
    """Human review of sampled requests: import the scores as a versioned metric."""


@review_group.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@json_option
def review_import(files, as_json) -> None:
    """Check scored review files and write metrics/<model>/review.json.

    Every line must score every criterion of the rubric within its scale,
    carry an id of the sample (once) and name its reviewer; errors name
    file:line. The metric holds the mean per criterion, per category, n,
    the reviewers and each sample's md5, and the same per version whose
    outputs were scored (a log line's version; for a sample of an eval
    set, the checkpoint md5 of its stored outputs). It is staged for
    commit; diff shows it, gate judges it, retrain-check reads prod's part.

    \b
    Example:
      git model review import review-done.jsonl
    """
    from gitmodel import review

    result = review.import_reviews(files)
    if as_json:
        emit_json(result.to_dict())
        return
    doc = result.doc
    click.echo(f"Wrote {result.path} (staged): {plural(doc['n'], 'review')} of {result.model} by "
               f"{', '.join(doc['reviewers'])}")
    groups = doc["metrics"]["by_version"]
    rows = [[c, number(v, 2), *(number(g["mean"][c], 2) for g in groups.values())]
            for c, v in doc["metrics"]["mean"].items()]
    click.echo(table(rows, ["criterion", "mean", *(f"{k} (n {g['n']})" for k, g in groups.items())]))
    click.echo("Next: git commit")
