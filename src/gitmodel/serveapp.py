"""`git model serve`: the OpenAI-compatible server, on Starlette and uvicorn (the ASGI stack
llama-cpp-python's own server runs on).

Every answered request goes through one path (:meth:`App.generate`): checked
(:mod:`serverequests`), routed and held (:meth:`serving.Deployment.checkout`), answered by llama.cpp in
a worker thread, logged as one whole line of the production log (:class:`prodlog.LogWriter`), counted
in ``/metrics``. Every response carries ``X-Model-Version`` and ``X-Model-Stage``: the version that
answered, or for a request refused before routing the version prod would have given it.

Requests refused before routing (bad JSON, a wrong field, a missing API key) have no version: they are
counted in ``/metrics`` but not written to the production log, which holds what a model saw and said.
"""
from __future__ import annotations

import hmac
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import prodlog, serverequests, servemetrics, serving
from gitmodel.errors import GitModelError
from gitmodel.serverequests import ApiError, Limits
from gitmodel.servemodels import PromptTooLong

log = logging.getLogger("gitmodel.serve")


@dataclass
class Options:
    host: str = "127.0.0.1"
    port: int = 8000
    log_dir: Path | None = None
    poll: float = 5.0
    api_key_env: str | None = None
    limits: Limits = field(default_factory=Limits)
    cache_folder: Path | None = None


class App:
    """The ASGI application of one deployment."""

    def __init__(self, deployment: serving.Deployment, *, log_dir: Path | None = None, api_key: str | None = None,
                 limits: Limits | None = None):
        from starlette.applications import Starlette
        from starlette.routing import Route

        self.deployment = deployment
        self.model = deployment.model
        self.limits = limits or Limits()
        self.api_key = api_key
        self.writer = prodlog.LogWriter(log_dir, self.model) if log_dir is not None else None
        self.metrics = servemetrics.Metrics(self.model)
        self.asgi = Starlette(routes=[
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
            Route("/metrics", self.prometheus, methods=["GET"]),
        ], exception_handlers={404: self._not_found, 405: self._not_allowed})

    async def __call__(self, scope, receive, send):
        await self.asgi(scope, receive, send)

    # -- endpoints -------------------------------------------------------------------------------

    async def completions(self, request):
        return await self.generate(request, serverequests.COMPLETIONS)

    async def chat(self, request):
        return await self.generate(request, serverequests.CHAT)

    async def models(self, request):
        from starlette.responses import JSONResponse

        routes = self.deployment.routes
        data = [{"id": self.model, "object": "model", "owned_by": "git-model",
                 "versions": [a.to_dict() for a in routes.arms()]}]
        return JSONResponse({"object": "list", "data": data}, headers=self._headers(None))

    async def health(self, request):
        from starlette.responses import JSONResponse

        status = self.deployment.status.to_dict()
        return JSONResponse(status, status_code=200 if status["status"] == "ok" else 503,
                            headers=self._headers(None))

    async def prometheus(self, request):
        from starlette.responses import Response

        return Response(self.metrics.render(self.deployment.routes), media_type=servemetrics.CONTENT_TYPE,
                        headers=self._headers(None))

    # -- the one path of a request to a model -----------------------------------------------------

    async def generate(self, request, kind: str):
        from starlette.concurrency import run_in_threadpool

        started = time.perf_counter()
        try:
            self._authorize(request)
            parsed = serverequests.parse(kind, await self._body(request), self.model, self.limits)
        except ApiError as e:
            return self._refused(e, started)
        user_key = serving.user_hash(parsed.user) if parsed.user else None
        held = self.deployment.checkout(user_key)
        if held is None:
            return self._refused(ApiError(503, f"no version of '{self.model}' holds prod: nothing to serve",
                                          type="server_error", code="model_unavailable"), started)
        arm, loaded = held
        # the answer and its log line in one worker thread: a write that waits on the disk (an append to
        # a page under writeback) holds up this request only, never the event loop and every request
        status, body, error, latency_ms = await run_in_threadpool(self._answer, arm, loaded, parsed, user_key,
                                                                   started)
        self.metrics.observe(arm.version, arm.stage, status, latency_ms / 1000.0)
        headers = self._headers(arm)
        if error is not None:
            return self._json(error.body(), status, headers)
        if parsed.stream:
            from starlette.responses import StreamingResponse

            return StreamingResponse(iter(serverequests.stream_chunks(body)), media_type="text/event-stream",
                                     headers=headers)
        return self._json(body, 200, headers)

    def _answer(self, arm: serving.Arm, loaded, parsed, user_key: str | None, started: float):
        """(status, body, error, latency ms) of one request on ``loaded``, which it checks back in; its line
        is in the production log before it returns."""
        defaults = loaded.settings
        text, status, error, body, done = "", 200, None, None, None
        try:
            done = loaded.complete(
                parsed.prompt, max_tokens=parsed.max_tokens or defaults.max_tokens,
                temperature=defaults.temperature if parsed.temperature is None else parsed.temperature,
                seed=defaults.seed if parsed.seed is None else parsed.seed, stop=parsed.stop)
            text = done.text
            body = serverequests.answer(parsed, self.model, arm.version, text, done.prompt_tokens,
                                        done.completion_tokens, done.finish_reason)
        except PromptTooLong as e:
            status, error = 400, ApiError(400, e.message, param="prompt", code="context_length_exceeded")
        except GitModelError as e:
            status, error = 500, ApiError(500, e.message, type="server_error", code="model_error")
        except Exception as e:       # a request must never take the server down
            log.exception("%s@%s failed on a request", self.model, arm.version)
            status, error = 500, ApiError(500, f"the model failed: {type(e).__name__}", type="server_error",
                                          code="model_error")
        finally:
            self.deployment.checkin(loaded)
        latency_ms = (time.perf_counter() - started) * 1000.0
        self._log(prodlog.make_record(
            id=body["id"] if body else None, model=self.model, version=arm.version, stage=arm.stage,
            input=parsed.input, output=text, label=done.label if done and status == 200 else None,
            confidence=done.confidence if done and status == 200 else None,
            output_tokens=body["usage"]["completion_tokens"] if body else None, latency_ms=latency_ms,
            status=status, user=user_key))
        return status, body, error, latency_ms

    # -- helpers ---------------------------------------------------------------------------------

    def _authorize(self, request) -> None:
        if self.api_key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.api_key.encode()):
            raise ApiError(401, "a valid API key is required: send 'Authorization: Bearer <key>'",
                           code="invalid_api_key")

    async def _body(self, request) -> bytes:
        cap = self.limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            raise ApiError(413, f"the request body has {declared} bytes; this server takes at most {cap}",
                           code="request_too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise ApiError(413, f"the request body has more than {cap} bytes; this server takes at most {cap}",
                               code="request_too_large")
            chunks.append(chunk)
        return b"".join(chunks)

    def _log(self, record: dict) -> None:
        if self.writer is None:
            return
        try:
            self.writer.write(record)
        except OSError as e:     # a full disk must not fail the answer; it is said where operators look
            log.error("could not write the production log in %s: %s", self.writer.directory, e)

    def _headers(self, arm: serving.Arm | None) -> dict:
        arm = arm or self.deployment.routes.prod
        return {"X-Model-Version": arm.version if arm else "none", "X-Model-Stage": arm.stage if arm else "none"}

    def _refused(self, error: ApiError, started: float):
        self.metrics.observe("", "", error.status, time.perf_counter() - started)
        return self._json(error.body(), error.status, self._headers(None))

    @staticmethod
    def _json(body: dict, status: int, headers: dict):
        import json

        from starlette.responses import Response

        return Response(json.dumps(body, ensure_ascii=False), status_code=status, media_type="application/json",
                        headers=headers)

    async def _not_found(self, request, exc):
        error = ApiError(404, f"no such endpoint: {request.method} {request.url.path}", code="not_found")
        return self._refused(error, time.perf_counter())

    async def _not_allowed(self, request, exc):
        error = ApiError(405, f"{request.url.path} does not take {request.method}", code="method_not_allowed")
        return self._refused(error, time.perf_counter())


def api_key_from(env: str | None) -> str | None:
    """The API key in environment variable ``env``; an error when it is named but unset or empty."""
    if env is None:
        return None
    key = os.environ.get(env, "").strip()
    if not key:
        raise GitModelError(f"--api-key-env {env}: the environment variable {env} is not set or empty",
                            hint=f"export {env}=<key> before starting the server, or leave --api-key-env out")
    return key


def listen(host: str, port: int):
    """The listening socket, bound before anything is loaded: a port in use is said at once (port 0: any
    free port, the one chosen is the socket's)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not left 0: asyncio sets TCP_NODELAY only on sockets whose protocol says TCP,
    # and without it Nagle's algorithm holds each response's body back ~40 ms for the client's ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise GitModelError(f"cannot listen on {host}:{port}: {e.strerror or e}",
                            hint="pick another --port, or stop what holds this one") from None
    sock.listen(2048)
    return sock


def serve(model: str, options: Options, on_ready=None, start: Path | None = None) -> serving.Routes:
    """Serve ``model`` until interrupted (SIGINT / SIGTERM); SIGHUP re-reads the stage tags at once.

    The stage holders are loaded before requests are taken; ``on_ready(deployment, url)`` is called
    then. Returns the routes served last."""
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise GitModelError(f"`git model serve` needs Starlette and uvicorn: {e}",
                            hint="pip install 'git-model[serve]'") from None

    from gitmodel import known
    from gitmodel import registry as registry_mod

    api_key = api_key_from(options.api_key_env)
    deployment = serving.Deployment(model, start, options.cache_folder)
    known.check_model(deployment.root, model, registry_mod.load(deployment.root).models())
    sock = listen(options.host, options.port)
    try:
        deployment.refresh()
        app = App(deployment, log_dir=options.log_dir, api_key=api_key, limits=options.limits)
        follower = serving.Follower(deployment, options.poll)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        previous = signal.signal(signal.SIGHUP, lambda *_: follower.wake()) if hasattr(signal, "SIGHUP") else None
        follower.start()
        try:
            if on_ready is not None:
                host, port = sock.getsockname()[:2]
                on_ready(deployment, f"http://{host}:{port}")
            server.run(sockets=[sock])
        finally:
            follower.stop()
            if previous is not None:
                signal.signal(signal.SIGHUP, previous)
            if app.writer is not None:
                app.writer.close()
    finally:
        sock.close()
        routes = deployment.routes
        deployment.close()
    return routes
