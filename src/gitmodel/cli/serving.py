"""Commands of serving: serve, canary-check."""
from __future__ import annotations

import click

from gitmodel.cli.app import MODEL_NAME, SECONDS, cli


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
