"""Commands of serving: serve, canary-check."""
from __future__ import annotations

import click

from gitmodel.cli.app import MODEL_NAME, SECONDS, cli, emit_json, json_option, wait_option


def _on_ready(deployment, url: str) -> None:
    from gitmodel.serving import describe

    click.echo(f"Serving {deployment.model} on {url}: {describe(deployment.routes)}", err=True)
    for why in deployment.status.problems.values():
        click.echo(f"Warning: {why}", err=True)
    click.echo("  follows the stage tags; Ctrl-C stops it, SIGHUP re-reads the tags now", err=True)


@cli.command()
@click.argument("model", type=MODEL_NAME)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback only by default; 0.0.0.0 for every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0: any free port, named when the server starts).")
@click.option("--log", "log_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Write the production log here: one line per request, a file per UTC day (MODEL-YYYY-MM-DD.jsonl).")
@click.option("--poll", type=SECONDS, default=5.0, show_default=True, metavar="SECONDS",
              help="How often to re-read the stage tags (0: only on SIGHUP).")
@click.option("--api-key-env", metavar="NAME",
              help="Require 'Authorization: Bearer <key>' on /v1/, the key read from this environment variable.")
@click.option("--max-body-bytes", type=click.IntRange(1), default=1 << 20, show_default=True,
              help="Larger request bodies are answered 413.")
@click.option("--max-tokens-cap", type=click.IntRange(1), default=512, show_default=True,
              help="A request asking for more max_tokens is answered 400.")
def serve(model, host, port, log_dir, poll, api_key_env, max_body_bytes, max_tokens_cap) -> None:
    """Serve MODEL over an OpenAI-compatible HTTP API, following its stage tags.

    The version holding MODEL#prod answers; when MODEL#canary holds another
    version with a fraction, that version answers that share of requests
    (sticky per `user` field, seeded random otherwise). Endpoints: POST
    /v1/completions and /v1/chat/completions, GET /v1/models, /health and
    /metrics (Prometheus). Every response names the version and stage that
    answered in X-Model-Version and X-Model-Stage. When the stage tags change
    (promote, rollback, end), the new versions are loaded and take over
    between requests, with no restart. Each checkpoint is copied by md5 from
    the DVC cache into .dvc/tmp/gitmodel/serve-cache, never the workspace,
    and runs with the eval-time settings of its release (temperature, seed,
    max_tokens, n_ctx). With --log, every request is one line of the
    production log that `git model drift` and `git model canary-check` read.

    \b
    Examples:
      git model serve chat --port 8000 --log logs/
      curl -s localhost:8000/v1/chat/completions -d '{"messages":[{"role":"user","content":"hi"}]}'
      API_KEY=s3cret git model serve chat --host 0.0.0.0 --api-key-env API_KEY
    """
    from pathlib import Path

    from gitmodel import serveapp
    from gitmodel.serverequests import Limits

    options = serveapp.Options(host=host, port=port, log_dir=Path(log_dir) if log_dir else None, poll=poll,
                               api_key_env=api_key_env, limits=Limits(max_body_bytes, max_tokens_cap))
    serveapp.serve(model, options, on_ready=_on_ready)
    click.echo("Stopped.", err=True)


def _figures(report) -> tuple[list[str], list[list[str]]]:
    from gitmodel.cli.render import value

    def errors(arm) -> str:
        return f"{arm.errors} ({arm.error_rate:.2%})" if arm.requests else "-"

    p, c = report.prod, report.canary
    headers = ["", f"prod {p.version or '(none)'}", f"canary {c.version}"]
    rows = [["requests", str(p.requests), str(c.requests)],
            ["errors (5xx)", errors(p), errors(c)],
            ["latency p50 (ms)", value(p.latency_p50, 1), value(c.latency_p50, 1)],
            ["latency p95 (ms)", value(p.latency_p95, 1), value(c.latency_p95, 1)]]
    return headers, rows


def _signal_rows(report) -> list[list[str]]:
    from gitmodel.cli.render import value

    return [[s.name, value(s.psi.value if s.psi else None, 4), s.band if s.judged else f"{s.band} (shown, not judged)"]
            for s in report.signals]


def _next_step(report) -> str | None:
    from gitmodel import canary

    if report.applied is not None:
        return None
    if report.verdict == canary.PROMOTE:
        return f"git model promote {report.model} {report.canary.version} --stage prod   (or canary-check --apply)"
    if report.verdict == canary.END:
        return f"git model end {report.model} --stage canary   (or canary-check --apply)"
    return None


def _render_text(report) -> list[str]:
    from gitmodel.cli.render import table
    from gitmodel.drift import SMOOTHING_TEXT

    share = f" at {report.fraction:g} of traffic" if report.fraction is not None else ""
    lines = [f"Canary check: {report.model}: canary {report.canary.version}{share} vs prod "
             f"{report.prod.version or '(none)'}, since {report.since}",
             f"  watched {report.hours_watched:.1f} h (first to last canary request; "
             f"{report.policy.min_hours:g} h and {report.policy.min_requests} requests per arm required)", ""]
    headers, rows = _figures(report)
    lines += table(rows, headers, ("left", "right", "right")).splitlines() + [""]
    lines += table(_signal_rows(report), ["signal (canary vs prod)", "PSI", "band"],
                   ("left", "right", "left")).splitlines()
    lines += [f"  PSI: {SMOOTHING_TEXT}; watch from {report.policy.psi_watch:g}, alert from {report.policy.psi_alert:g}",
              ""]
    lines.append(f"Verdict: {report.verdict}")
    lines += [f"  - {reason}" for reason in report.reasons]
    step = _next_step(report)
    if step:
        lines.append(f"  next: {step}")
    return lines


def _render_md(report) -> list[str]:
    from gitmodel.cli.render import md_cell, md_table

    headers, rows = _figures(report)
    lines = [f"### Canary check: {md_cell(report.model)}: **{report.verdict}**", "",
             f"canary `{report.canary.version}` vs prod `{report.prod.version}`, "
             f"watched {report.hours_watched:.1f} h since {report.since}", ""]
    lines += md_table([[md_cell(c) for c in row] for row in rows], [md_cell(h) for h in headers],
                      ("left", "right", "right")) + [""]
    lines += md_table(_signal_rows(report), ["signal", "PSI", "band"], ("left", "right", "left")) + [""]
    lines += [f"- {md_cell(reason)}" for reason in report.reasons]
    return lines


@cli.command("canary-check")
@click.argument("model", type=MODEL_NAME)
@click.option("--log", "logs", multiple=True, required=True, metavar="PATH",
              help="Production log files, folders or globs (repeatable); gzip files too.")
@click.option("--apply", is_flag=True,
              help="Carry out the verdict: promote the canary to prod (through the gate) or end it.")
@wait_option
@json_option
@click.option("--md", "as_md", is_flag=True, help="Print GitHub Markdown (for a pull request or an issue).")
@click.pass_context
def canary_check(ctx, model, logs, apply, wait, as_json, as_md) -> None:
    """Compare the canary with prod on the production log: promote, keep watching, or end.

    Both arms are read from the log since the canary was assigned: requests,
    5xx error rate, latency p50/p95, and the PSI of the canary's outputs
    against prod's per signal (length, label, confidence, refusals). The
    verdict judges what users see: length, label and refusals (confidence is
    shown, not judged: two versions' calibrations differ by design, and the
    gate judged that shift on the eval set). It is "end" (exit 1) when a
    judged signal reaches the alert band or the canary errs more; "promote"
    when it was watched at least canary.min_hours (default 24) with
    canary.min_requests (default 200) per arm and every judged signal stable; "keep watching" (exit 0) otherwise, saying what is
    missing. Settings: params.yaml `canary:` (min_hours, min_requests,
    psi_watch, psi_alert, error_margin).

    \b
    Examples:
      git model canary-check chat --log logs/
      git model canary-check chat --log 'logs/chat-2026-11-*.jsonl' --json
      git model canary-check chat --log logs/ --apply
    """
    from gitmodel import canary

    report = canary.canary_check(model, list(logs), apply=apply, wait=wait)
    refused = bool(report.applied and report.applied["refused"])
    if as_json:
        emit_json(report.to_dict())
    elif as_md:
        click.echo("\n".join(_render_md(report)))
    else:
        for line in _render_text(report):
            click.echo(line)
        if report.applied:
            what = report.applied
            if refused:
                click.echo(f"Applied: promotion of {model}@{report.canary.version} to prod refused by the gate "
                           f"({what['gate']}); nothing was written.", err=True)
            else:
                click.echo(f"Applied: {what['action']} ({', '.join(what['tags'])})")
    if report.verdict == canary.END or refused:
        ctx.exit(1)
