"""Monitoring production at the command line: drift, retrain-check, sample, review import.
Rendering only: the cores are monitoring.py, retrain.py and review.py."""
from __future__ import annotations

from datetime import datetime, timezone

import click

from gitmodel.cli.app import EVALSET_NAME, MODEL_NAME, cli, emit_json, json_option, plural
from gitmodel.cli.render import code, md_cell, md_table, number, table

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
        shares = sorted(named.items(), key=lambda kv: -kv[1])[:3]
        text = ", ".join(f"{k} {v:.0%}" for k, v in shares) or "-"
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
@click.option("--version", "version", metavar="V", help="Only records answered by this model version.")
@log_options
@click.option("--fail-on", type=click.Choice(["watch", "alert"]), default="alert", show_default=True,
              help="Exit 1 when a signal reaches this band.")
@click.option("--save-profile", metavar="FILE", help="Write the window's profile (JSON; profiles add up).")
@click.option("--profile", "profile_files", multiple=True, metavar="FILE",
              help="Read a saved profile instead of logs (repeatable: the profiles are added).")
@click.option("--md", is_flag=True, help="Print GitHub Markdown (for an issue or a comment).")
@json_option
def drift(model, logs, baseline, baseline_logs, version, since, until, strict, fail_on, save_profile,
          profile_files, md, as_json) -> None:
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
    """
    from gitmodel import monitoring

    _check_window(since, until)
    if not logs and not profile_files:
        raise click.UsageError("give the logs (--log PATH) or saved profiles (--profile FILE)")
    if baseline and baseline_logs:
        raise click.UsageError("--baseline and --baseline-log name two baselines: give one")
    result = monitoring.drift(model, logs, baseline=baseline, baseline_logs=baseline_logs, version=version,
                              since=since, until=until, profile_files=profile_files, save_profile=save_profile,
                              strict=strict, fail_on=fail_on)
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
