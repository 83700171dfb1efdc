"""A JSON-over-HTTP client for the runners that talk to a server: retries with backoff on what may
pass (429, 5xx, a refused or dropped connection, a timeout), the server's own words on what will not,
and a hint for the person at the terminal. Only the standard library speaks HTTP here."""
from __future__ import annotations

import json
import os
import socket
import threading
import urllib.error
import urllib.request
from typing import Any, Callable, Mapping

from gitmodel.errors import RunnerError

RETRY_STATUSES = frozenset({429}) | frozenset(range(500, 600))
# Server messages can hold a whole traceback (llama_cpp.server puts one in its 500s).
MAX_MESSAGE_CHARS = 300


class _Retryable(Exception):
    """A failure worth another attempt; carries the message to raise when attempts run out."""


class JSONClient:
    """GET and POST JSON objects under one base URL.

    ``stop`` is shared by the requests of one run: once set (another request failed for good), waiting
    retries end at once. ``on_headers`` sees the headers of every answer (the runner reads the
    served model's md5 there)."""

    def __init__(self, url: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 30.0,
                 retries: int = 3, backoff: float = 0.5,
                 on_headers: Callable[[Mapping[str, str]], None] | None = None):
        self.url = url.rstrip("/")
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.on_headers = on_headers
        self.stop = threading.Event()

    def get(self, path: str) -> dict:
        return self.call(path, None, "")

    def post(self, path: str, body: dict, about: str = "") -> dict:
        """POST ``body``; ``about`` (e.g. " for example 'r1'") goes into the messages of bad answers."""
        return self.call(path, json.dumps(body).encode("utf-8"), about)

    def call(self, path: str, data: bytes | None, about: str) -> dict:
        """GET (no data) or POST JSON with retries; returns the decoded JSON object."""
        endpoint = self.url + path
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        api_key = os.environ.get(self.api_key_env)
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        attempts = self.retries + 1
        for attempt in range(attempts):
            if attempt:
                # Exponential backoff without jitter: runs stay reproducible and tests fast.
                # Waiting on the stop flag lets a failed run end without sitting out the delay.
                self.stop.wait(self.backoff * 2 ** (attempt - 1))
            if self.stop.is_set():
                raise RunnerError("openai runner: stopped (another request failed)")
            try:
                raw = self._once(endpoint, data, headers)
                break
            except _Retryable as exc:
                if attempt == attempts - 1:
                    suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
                    raise RunnerError(f"{exc}{suffix}",
                                      hint="check that the server is up and the URL is right") from None
        return decode(endpoint, raw, about)

    def _once(self, endpoint: str, data: bytes | None, headers: dict) -> bytes:
        request = urllib.request.Request(endpoint, data=data, headers=headers,
                                         method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                if self.on_headers is not None:
                    self.on_headers(response.headers)
                return response.read()
        except urllib.error.HTTPError as exc:
            message = f"{endpoint} answered HTTP {exc.code}: {server_message(exc)}"
            if exc.code in RETRY_STATUSES:
                raise _Retryable(message) from None
            error = RunnerError(message, hint=self.hint_for(exc.code, message))
            error.status = exc.code
            raise error from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise _Retryable(f"{endpoint} did not answer within {self.timeout:g} s") from None
            if isinstance(reason, ConnectionRefusedError):
                raise _Retryable(f"cannot reach {self.url}: connection refused; is the server running?") from None
            raise _Retryable(f"cannot reach {self.url}: {reason_text(reason)}") from None
        except (TimeoutError, socket.timeout):
            raise _Retryable(f"{endpoint} did not answer within {self.timeout:g} s") from None
        except (ConnectionError, OSError) as exc:
            # Dropped mid-answer (RemoteDisconnected, reset): the server may be restarting.
            raise _Retryable(f"{endpoint} dropped the connection: {reason_text(exc)}") from None

    def hint_for(self, status: int, message: str) -> str | None:
        if "logits_all" in message:
            return "start llama_cpp.server with --logits_all true so it can return log-probabilities"
        if status in (401, 403):
            return f"put the API key in the environment variable {self.api_key_env}"
        if status == 404:
            return "is the URL the API's base (it usually ends in /v1)?"
        return None


def decode(endpoint: str, raw: bytes, about: str = "") -> dict:
    """The JSON object an endpoint answered; RunnerError naming the endpoint when it is anything else."""
    try:
        answer = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        snippet = raw[:80].decode("utf-8", errors="replace")
        raise RunnerError(f"{endpoint} answered{about} with something that is not JSON: {snippet!r}",
                          hint="is the URL an OpenAI-compatible API (it usually ends in /v1)?") from None
    if not isinstance(answer, dict):
        raise RunnerError(f"{endpoint} answered{about} with a JSON {type(answer).__name__}, expected an object",
                          hint="is the URL an OpenAI-compatible API (it usually ends in /v1)?")
    return answer


def server_message(exc: urllib.error.HTTPError) -> str:
    """The server's own words: OpenAI's ``{"error": {"message"}}``, or the body's start."""
    try:
        body = exc.read()
    except OSError:
        body = b""
    message = ""
    try:
        payload = json.loads(body)
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            message = str(error.get("message") or "")
        elif isinstance(error, str):
            message = error
        elif isinstance(payload, dict) and isinstance(payload.get("detail"), str):
            message = payload["detail"]
    except (ValueError, UnicodeDecodeError):
        message = body.decode("utf-8", errors="replace")
    message = " ".join(message.split()) or (exc.reason if isinstance(exc.reason, str) else "") or "no message"
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + "..."
    return message


def reason_text(reason: Any) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower() if isinstance(reason, ConnectionError) else str(reason.strerror)
    return str(reason) or type(reason).__name__
