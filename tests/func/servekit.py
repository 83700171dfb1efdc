"""A real `git model serve` process on a free 127.0.0.1 port, and a small HTTP client for it."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

READY = re.compile(r"^Serving \S+ on (http://127\.0\.0\.1:(\d+)):", re.M)


class Server:
    """`git model serve MODEL --port 0 ...` in ``repo``; the port is the one the server names on stderr."""

    def __init__(self, repo: Path, model: str, *args: str, log_dir: Path | None = None, poll: float = 0.2,
                 env: dict | None = None):
        self.repo, self.model, self.args, self.log_dir, self.poll = repo, model, args, log_dir, poll
        self.env = {**os.environ, "DVC_NO_ANALYTICS": "1", **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.stderr_file = repo.parent / f"serve-{id(self)}-{time.monotonic_ns()}.err"

    def start(self, timeout: float = 180.0) -> "Server":
        cmd = [sys.executable, "-m", "gitmodel", "serve", self.model, "--port", "0", "--poll", str(self.poll),
               *self.args]
        if self.log_dir is not None:
            cmd += ["--log", str(self.log_dir)]
        with open(self.stderr_file, "wb") as err:
            self.proc = subprocess.Popen(cmd, cwd=self.repo, env=self.env, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = READY.search(self.stderr())
            if found:
                self.port = int(found.group(2))
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with {self.proc.returncode}: {self.stderr()}")
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"the server did not start within {timeout} s: {self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_file.read_text(errors="replace") if self.stderr_file.exists() else ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def hup(self) -> None:
        self.proc.send_signal(signal.SIGHUP)

    def client(self) -> "Client":
        return Client(self.port)

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Response:
    def __init__(self, status: int, headers: dict, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    @property
    def version(self) -> str:
        return self.headers.get("x-model-version")

    @property
    def stage(self) -> str:
        return self.headers.get("x-model-stage")


class Client:
    """One keep-alive connection (reopened when the server closes it)."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, method: str, path: str, body: bytes | dict | None = None, headers: dict | None = None) -> Response:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=headers or {})
                answer = self.conn.getresponse()
                payload = answer.read()
                return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, payload)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def complete(self, prompt: str, **fields) -> Response:
        return self.request("POST", "/v1/completions", {"prompt": prompt, **fields})

    def chat(self, content: str, **fields) -> Response:
        return self.request("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": content}],
                                                             **fields})

    def close(self) -> None:
        self.conn.close()


def wait_for(predicate, timeout: float = 30.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")
