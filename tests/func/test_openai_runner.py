"""The openai runner against a real llama_cpp.server, and against a tiny server that injects faults."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from gitmodel import evalsets
from gitmodel.errors import RunnerError
from gitmodel.runners import make_runner
from gitmodel.runners.base import Example, RunSettings
from gitmodel.runners.openai import OpenAIRunner

SERVER_START_SECONDS = 60
LABELS = ("positive", "negative")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    # A proxy from the developer's environment must not sit between us and 127.0.0.1.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


# -- the real server --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def demo_model(demo_dir) -> Path:
    return demo_dir / "sentiment-v2.gguf"


@pytest.fixture(scope="session")
def demo_examples(demo_dir) -> list[Example]:
    return evalsets.load(demo_dir / "sentiment.jsonl")


class LlamaServer:
    """``python -m llama_cpp.server`` over one checkpoint on loopback; stop() and start() again at the same port."""

    def __init__(self, model: Path, log: Path, port: int | None = None, extra: tuple[str, ...] = ()):
        self.model, self.log, self.port, self.extra = model, log, port or free_port(), extra
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.process: subprocess.Popen | None = None

    def start(self, model: Path | None = None) -> "LlamaServer":
        self.model = model or self.model
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model), "--host", "127.0.0.1",
                 "--port", str(self.port), "--logits_all", "true", "--n_ctx", "512", "--n_threads", "1",
                 *self.extra],
                stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {self.process.returncode}:\n"
                            f"{self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"llama_cpp.server not ready after {SERVER_START_SECONDS} s:\n"
                            f"{self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@pytest.fixture(scope="session")
def llama_server(demo_model, tmp_path_factory):
    """``python -m llama_cpp.server`` on a free port over the demo checkpoint; its /v1 URL."""
    server = LlamaServer(demo_model, tmp_path_factory.mktemp("llama-server") / "server.log")
    try:
        yield server.start().url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def in_process(demo_model):
    """The llama runner over the same checkpoint: what the openai runner must agree with."""
    from gitmodel.runners.llama import LlamaRunner

    runner = LlamaRunner(demo_model, RunSettings(max_tokens=8, seed=7))
    yield runner
    runner.close()


@pytest.fixture(scope="session")
def reference(in_process, demo_examples):
    return in_process.predict(demo_examples)


def test_matches_the_in_process_runner_on_the_demo_eval_set(llama_server, demo_examples, reference):
    runner = make_runner("openai", settings=RunSettings(), url=llama_server, concurrency=4)
    done = []
    predictions = runner.predict(demo_examples, progress=done.append)
    assert len(predictions) == len(demo_examples) == sum(done)
    assert [p.label for p in predictions] == [r.label for r in reference]
    assert [p.tie for p in predictions] == [r.tie for r in reference]
    for mine, theirs in zip(predictions, reference):
        assert mine.confidence == pytest.approx(theirs.confidence, abs=1e-4)
        for label in mine.scores:
            assert mine.scores[label] == pytest.approx(theirs.scores[label], abs=1e-3)
        assert mine.output_tokens == 1  # " positive" and " negative" are one token each in the demo vocabulary
    info = runner.info()
    assert info == {"name": "openai", "version": str(Path(info["version"])), "url": llama_server,
                    "llama_cpp_version": None, "scoring": "echo", "served_model": info["version"],
                    "served_md5": None}   # llama_cpp.server does not say the md5 of what it serves
    assert info["version"].endswith("sentiment-v2.gguf")  # llama_cpp.server reports the model path as its id


def test_concurrency_does_not_change_the_order(llama_server, demo_examples):
    subset = demo_examples[:60]
    one = OpenAIRunner(llama_server, RunSettings(), concurrency=1).predict(subset)
    many = OpenAIRunner(llama_server, RunSettings(), concurrency=8).predict(subset)
    assert [(p.label, p.confidence, p.scores) for p in one] == [(p.label, p.confidence, p.scores) for p in many]


def test_top_logprobs_scoring_agrees_with_echo(llama_server, demo_examples):
    subset = demo_examples[:40]
    echo = OpenAIRunner(llama_server, RunSettings()).predict(subset)
    # The demo vocabulary has under 1000 tokens, so every label is within the top k.
    top = OpenAIRunner(llama_server, RunSettings(), scoring="top_logprobs", top_logprobs=1000).predict(subset)
    assert [p.label for p in top] == [p.label for p in echo]
    for a, b in zip(top, echo):
        assert a.confidence == pytest.approx(b.confidence, abs=1e-6)


def test_generation_matches_the_in_process_runner(llama_server, in_process):
    examples = [Example(id="g1", input="the food was"), Example(id="g2", input="i thought the service")]
    served = OpenAIRunner(llama_server, RunSettings(max_tokens=8, seed=7)).predict(examples)
    local = in_process.predict(examples)
    assert [(p.output, p.output_tokens) for p in served] == [(p.output, p.output_tokens) for p in local]
    assert all(p.label is None and p.confidence is None for p in served)


# -- a server we control, for faults ------------------------------------------------------------

ECHO_LOGPROBS = {"positive": -0.25, "negative": -1.75}


def echo_answer(body: dict) -> dict:
    """What an OpenAI-compatible server answers: echoed prompt tokens with log-probabilities."""
    if not body.get("echo"):
        return {"model": "fake-model", "choices": [{"text": " fine", "index": 0}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    prompt = body["prompt"]
    tokens = re.findall(r"\s*\S+", prompt)
    offsets = [sum(map(len, tokens[:i])) for i in range(len(tokens))]
    logprobs = [None] + [-3.0] * (len(tokens) - 2) + [ECHO_LOGPROBS.get(tokens[-1].strip(), -9.0)]
    return {"model": "fake-model", "system_fingerprint": "fp_test",
            "choices": [{"text": prompt, "index": 0,
                         "logprobs": {"tokens": tokens, "text_offset": offsets, "token_logprobs": logprobs}}]}


class FakeServer:
    """Answers from a script (status, body[, delay]) one request at a time, then like a healthy server."""

    def __init__(self):
        self.script: list[tuple] = []
        self.requests: list[dict] = []
        self.models: tuple[int, dict] = (200, {"object": "list", "data": [{"id": "fake-model"}]})
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest's output clean
                pass

            def do_GET(self):
                with fake.lock:
                    fake.record(self, None)
                self.reply(*fake.models)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                # Taking a step and recording the request together keeps them paired.
                with fake.lock:
                    step = fake.script.pop(0) if fake.script else None
                    fake.record(self, body)
                if step is None:
                    self.reply(200, echo_answer(body))
                    return
                status, payload, *delay = step
                if delay:
                    time.sleep(delay[0])
                self.reply(status, payload)

            def reply(self, status, payload):
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def record(self, handler, body):
        self.requests.append({"method": handler.command, "path": handler.path,
                              "headers": dict(handler.headers), "body": body})

    @property
    def posts(self):
        return [r for r in self.requests if r["method"] == "POST"]


@pytest.fixture
def fake():
    server = FakeServer()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def fast_runner(url, **options):
    options.setdefault("backoff", 0.0)
    options.setdefault("concurrency", 1)
    return OpenAIRunner(url, RunSettings(), **options)


CLASSIFY = [Example(id="r1", input="the food was great", labels=LABELS)]
GENERATE = [Example(id="g1", input="tell me")]


def error_of(call) -> str:
    with pytest.raises(RunnerError) as info:
        call()
    return str(info.value)


def test_echo_scores_are_read_from_the_tokens_after_the_input(fake):
    runner = fast_runner(fake.url)
    [p] = runner.predict(CLASSIFY)
    assert p.label == "positive"
    assert p.scores == {"positive": -0.25, "negative": -1.75}
    assert p.confidence == pytest.approx(1 / (1 + np.exp(-1.5)))
    assert [r["body"]["prompt"] for r in fake.posts] == ["the food was great positive", "the food was great negative"]
    assert all(r["body"]["echo"] is True and r["body"]["logprobs"] == 1 and r["body"]["max_tokens"] == 1
               and r["body"]["model"] == "fake-model" for r in fake.posts)
    assert runner.info()["version"] == "fake-model (fp_test)"


def test_retries_503_then_succeeds(fake):
    fake.script = [(503, {"error": {"message": "loading model"}})] * 2
    [p] = fast_runner(fake.url, retries=3).predict(GENERATE)
    assert p.output == " fine" and p.output_tokens == 1
    assert len(fake.posts) == 3


def test_retries_429(fake):
    fake.script = [(429, {"error": {"message": "slow down"}})]
    fast_runner(fake.url, retries=1).predict(GENERATE)
    assert len(fake.posts) == 2


def test_gives_up_after_the_retry_limit(fake):
    fake.script = [(503, {"error": {"message": "loading model"}})] * 5
    assert error_of(lambda: fast_runner(fake.url, retries=2).predict(GENERATE)) == (
        f"{fake.url}/completions answered HTTP 503: loading model (after 3 attempts)"
    )
    assert len(fake.posts) == 3


def test_backoff_grows_exponentially(fake):
    fake.script = [(500, b"boom")] * 3
    began = time.monotonic()
    fast_runner(fake.url, retries=3, backoff=0.05).predict(GENERATE)
    assert time.monotonic() - began >= 0.05 + 0.1 + 0.2


def test_a_failure_stops_the_other_requests_without_waiting_out_their_backoff(fake):
    fake.script = [(400, {"error": {"message": "bad request"}}), (503, {"error": {"message": "busy"}})]
    examples = [Example(id="g1", input="one"), Example(id="g2", input="two")]
    began = time.monotonic()
    with pytest.raises(RunnerError, match="answered HTTP (400: bad request|503: busy)"):
        fast_runner(fake.url, concurrency=2, backoff=5.0).predict(examples)
    assert time.monotonic() - began < 2.0


def test_other_4xx_fail_at_once_with_the_servers_message(fake):
    fake.script = [(400, {"error": {"message": "prompt is too long", "type": "invalid_request_error"}})]
    assert error_of(lambda: fast_runner(fake.url, retries=3).predict(GENERATE)) == (
        f"{fake.url}/completions answered HTTP 400: prompt is too long"
    )
    assert len(fake.posts) == 1


def test_garbage_body(fake):
    fake.script = [(200, b"<html>502 Bad Gateway</html>")]
    assert error_of(lambda: fast_runner(fake.url).predict(GENERATE)) == (
        f"{fake.url}/completions answered for example 'g1' with something that is not JSON: "
        "'<html>502 Bad Gateway</html>'"
    )


def test_missing_logprobs_field(fake):
    fake.script = [(200, {"choices": [{"text": "the food was great positive"}]})]
    assert error_of(lambda: fast_runner(fake.url).predict(CLASSIFY)) == (
        f"{fake.url}/completions answer for example 'r1' has no `choices[0].logprobs`"
    )


def test_missing_usage_field(fake):
    fake.script = [(200, {"choices": [{"text": "hello"}]})]
    assert error_of(lambda: fast_runner(fake.url).predict(GENERATE)) == (
        f"{fake.url}/completions answer for example 'g1' has no `usage`"
    )


def test_prompt_not_echoed(fake):
    answer = echo_answer({"echo": True, "prompt": "the food was great positive"})
    answer["choices"][0]["text"] = ""
    fake.script = [(200, answer)]
    assert error_of(lambda: fast_runner(fake.url).predict(CLASSIFY)) == (
        f"{fake.url}/completions answer for example 'r1', label 'positive': the prompt was not echoed "
        "(`choices[0].text` is shorter than it)"
    )


def test_unreachable_endpoint():
    url = f"http://127.0.0.1:{free_port()}/v1"  # bound then released: nothing listens there
    assert error_of(lambda: fast_runner(url, retries=1).predict(GENERATE)) == (
        f"cannot reach {url}: connection refused; is the server running? (after 2 attempts)"
    )


def test_timeout_is_retried_then_reported(fake):
    fake.script = [(200, echo_answer({}), 1.0)] * 2
    assert error_of(lambda: fast_runner(fake.url, retries=1, timeout=0.2).predict(GENERATE)) == (
        f"{fake.url}/completions did not answer within 0.2 s (after 2 attempts)"
    )


def test_api_key_comes_from_the_environment(fake, monkeypatch):
    monkeypatch.setenv("GM_TEST_API_KEY", "sk-test-123")
    fast_runner(fake.url, api_key_env="GM_TEST_API_KEY").predict(GENERATE)
    assert {r["headers"].get("Authorization") for r in fake.requests} == {"Bearer sk-test-123"}


def test_rejected_key_names_the_environment_variable(fake):
    fake.script = [(401, {"error": {"message": "Incorrect API key provided"}})]
    with pytest.raises(RunnerError) as info:
        fast_runner(fake.url, api_key_env="GM_TEST_API_KEY", retries=3).predict(GENERATE)
    assert str(info.value) == f"{fake.url}/completions answered HTTP 401: Incorrect API key provided"
    assert info.value.hint == "put the API key in the environment variable GM_TEST_API_KEY"
    assert len(fake.posts) == 1


def test_no_api_key_no_header(fake):
    fast_runner(fake.url).predict(GENERATE)
    assert all("Authorization" not in r["headers"] for r in fake.requests)


def test_several_served_models_need_a_choice(fake):
    fake.models = (200, {"data": [{"id": "a"}, {"id": "b"}]})
    assert error_of(lambda: fast_runner(fake.url).predict(GENERATE)) == (
        f"{fake.url} serves 2 models (a, b); say which one to evaluate"
    )
    [p] = fast_runner(fake.url, model="b").predict(GENERATE)
    assert fake.posts[-1]["body"]["model"] == "b"


def test_no_models_listing_sends_no_model(fake):
    fake.models = (404, {"error": {"message": "not found"}})
    fast_runner(fake.url).predict(GENERATE)
    assert "model" not in fake.posts[-1]["body"]


def test_order_is_kept_under_concurrency_on_a_slow_server(fake):
    # Later examples answer first: the results must still come back in example order.
    examples = [Example(id=f"g{i}", input=f"prompt {i}") for i in range(6)]
    fake.script = [(200, {"model": "m", "choices": [{"text": f"answer {i}"}], "usage": {"completion_tokens": i}},
                    0.3 - 0.05 * i) for i in range(6)]
    predictions = fast_runner(fake.url, concurrency=6).predict(examples)
    # The script is consumed in arrival order, which concurrency scrambles: map answers by request.
    by_prompt = {r["body"]["prompt"]: i for i, r in enumerate(fake.posts)}
    assert [p.output for p in predictions] == [f"answer {by_prompt[e.input]}" for e in examples]


# -- provenance: a result records what produced it ----------------------------------------------

from gitmodel import metricdiff  # noqa: E402
from gitmodel.cli import cli  # noqa: E402
from tests.conftest import git  # noqa: E402

EVAL_V2 = ["eval", "sentiment-v2", "--evalset", "sentiment", "--runner", "openai"]
SUMMARY_V2 = "metrics/sentiment-v2/sentiment.json"


def md5_of(path: Path) -> str:
    import hashlib

    return hashlib.md5(path.read_bytes()).hexdigest()


class IdentityProxy:
    """In front of a llama_cpp.server, adds what our own server will give: the md5 of the weights it
    serves, in an ``X-Model-Md5`` header of every answer (``claim`` overrides it, to make it lie)."""

    def __init__(self, server: LlamaServer):
        self.backend, self.claim = server, None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.forward(None)

            def do_POST(self):
                self.forward(self.rfile.read(int(self.headers["Content-Length"])))

            def forward(self, data):
                backend = proxy.backend.url.removesuffix("/v1") + self.path
                request = urllib.request.Request(backend, data=data, headers={"Content-Type": "application/json"},
                                                 method=self.command)
                with urllib.request.urlopen(request, timeout=30) as answer:
                    body, status = answer.read(), answer.status
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Model-Md5", proxy.claim or md5_of(proxy.backend.model))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server_v3(demo_dir, tmp_path):
    """llama_cpp.server over demo v3, stopped after the test (also when it fails)."""
    server = LlamaServer(demo_dir / "sentiment-v3.gguf", tmp_path / "server.log")
    yield server.start()
    server.stop()


@pytest.fixture
def proxied_v2(demo_dir, tmp_path):
    server = LlamaServer(demo_dir / "sentiment-v2.gguf", tmp_path / "server.log").start()
    proxy = IdentityProxy(server)
    yield proxy
    proxy.close()
    server.stop()


def summary(repo: Path) -> dict:
    return json.loads((repo / SUMMARY_V2).read_text())


def ok(result):
    assert result.exit_code == 0, result.output + result.stderr
    return result


@pytest.mark.slow
def test_a_server_on_other_weights_is_unverified_and_release_refuses_it(registry, runner, server_v3):
    # v2 is tracked, the server serves v3 and says nothing of its md5
    result = ok(runner.invoke(cli, [*EVAL_V2, "--url", server_v3.url]))
    assert "UNVERIFIED:" in result.output
    doc = summary(registry)
    assert doc["verification"]["status"] == "unverified"
    assert doc["runner"]["url"] == server_v3.url
    assert doc["runner"]["served_model"].endswith("sentiment-v3.gguf") and doc["runner"]["served_md5"] is None
    assert doc["params"]["openai"] == {"model": None, "scoring": "echo", "top_logprobs": 20}
    status = ok(runner.invoke(cli, ["status", "sentiment-v2"])).output
    assert (f"  metrics:    sentiment: up to date, UNVERIFIED ({server_v3.url} served model "
            f"{doc['runner']['served_model']!r} without saying its md5, so nothing ties it to md5 "
            f"{doc['model']['md5']})") in status
    git(registry, "add", "-A")
    git(registry, "commit", "-q", "-m", "openai eval")
    refused = runner.invoke(cli, ["release", "sentiment-v2", "v1.0.0"])
    assert refused.exit_code == 3
    assert refused.stderr.startswith(f"Error: release sentiment-v2@v1.0.0 refused: unverified results: {SUMMARY_V2} (")
    assert "git model verify" in refused.stderr and "--accept-unverified" in refused.stderr
    assert git(registry, "tag", "--list") == ""
    # verify re-runs the tracked v2 in-process: v3's answers are not v2's
    verified = runner.invoke(cli, ["verify", "sentiment-v2"])
    assert verified.exit_code == 1 and verified.output.startswith("MISMATCH: sentiment-v2 on sentiment")
    assert "accuracy: stored" in verified.output
    assert summary(registry)["verification"]["status"] == "unverified"    # nothing recorded
    # an explicit, recorded acceptance
    ok(runner.invoke(cli, ["release", "sentiment-v2", "v1.0.0", "--accept-unverified", "load test only"]))
    message = git(registry, "tag", "-l", "--format=%(contents)", "sentiment-v2@v1.0.0")
    assert "Accepted-Unverified: load test only" in message
    refused = runner.invoke(cli, ["promote", "sentiment-v2", "v1.0.0", "--stage", "prod"])
    assert refused.exit_code == 3 and "promote sentiment-v2@v1.0.0 to prod refused: unverified" in refused.stderr
    ok(runner.invoke(cli, ["promote", "sentiment-v2", "v1.0.0", "--stage", "prod", "--accept-unverified", "drill"]))
    assert "Accepted-Unverified: drill" in git(registry, "tag", "-l", "--format=%(contents)", "sentiment-v2#prod#1")


@pytest.mark.slow
def test_restarting_the_server_on_other_weights_at_the_same_url_is_not_a_cache_hit(registry, runner, server_v3,
                                                                                     demo_dir):
    ok(runner.invoke(cli, [*EVAL_V2, "--url", server_v3.url]))
    first = summary(registry)
    server_v3.stop()
    server_v3.start(demo_dir / "sentiment-v1.gguf")
    result = ok(runner.invoke(cli, [*EVAL_V2, "--url", server_v3.url]))
    assert result.output.startswith("Evaluated ")
    second = summary(registry)
    assert second["runner"]["served_model"].endswith("sentiment-v1.gguf")
    assert second["metrics"]["accuracy"] != first["metrics"]["accuracy"]


@pytest.mark.slow
def test_a_server_proving_the_tracked_md5_ties_the_result(registry, runner, proxied_v2, demo_dir):
    ok(runner.invoke(cli, [*EVAL_V2, "--url", proxied_v2.url]))
    doc = summary(registry)
    tracked = doc["model"]["md5"]
    assert doc["runner"]["served_md5"] == tracked
    assert doc["verification"] == {"status": "tied", "detail": f"{proxied_v2.url} reported serving md5 {tracked}"}
    assert doc["timing_conditions"]["runner"] == "openai" and doc["timing_conditions"]["concurrency"] == 4
    assert doc["timing_conditions"]["n_threads"] is None and proxied_v2.url in doc["timing_conditions"]["machine"]
    # the same server, weights and settings: a cache hit
    assert ok(runner.invoke(cli, [*EVAL_V2, "--url", proxied_v2.url])).output.startswith("Up to date: ")
    # a setting that changes outputs is part of the key and of comparability
    params = registry / "params.yaml"
    params.write_text(params.read_text().replace("scoring: echo ", "scoring: top_logprobs "))
    assert ok(runner.invoke(cli, [*EVAL_V2, "--url", proxied_v2.url])).output.startswith("Evaluated ")
    same, reason = metricdiff.comparable(doc, summary(registry))
    assert not same and "openai" in reason
    git(registry, "add", "-A")
    git(registry, "commit", "-q", "-m", "tied openai eval")
    ok(runner.invoke(cli, ["release", "sentiment-v2", "v1.0.0"]))
    # the same URL now serving other weights says so: refused, nothing written
    before = (registry / SUMMARY_V2).read_bytes()
    proxied_v2.backend.stop()
    proxied_v2.backend.start(demo_dir / "sentiment-v3.gguf")
    refused = runner.invoke(cli, [*EVAL_V2, "--url", proxied_v2.url, "--force"])
    assert refused.exit_code == 3
    assert refused.stderr.startswith(f"Error: {proxied_v2.url} serves md5 {md5_of(demo_dir / 'sentiment-v3.gguf')}, "
                                     f"but models/sentiment-v2.gguf tracks md5 {tracked}")
    assert (registry / SUMMARY_V2).read_bytes() == before


@pytest.mark.slow
def test_verify_reproducing_an_unverified_result_records_it_and_release_accepts_it(registry, runner, demo_dir,
                                                                                   tmp_path):
    server = LlamaServer(demo_dir / "sentiment-v2.gguf", tmp_path / "server.log").start()
    try:
        ok(runner.invoke(cli, [*EVAL_V2, "--url", server.url]))
    finally:
        server.stop()
    assert summary(registry)["verification"]["status"] == "unverified"
    result = ok(runner.invoke(cli, ["verify", "sentiment-v2"]))
    assert result.output.startswith("Reproduced: sentiment-v2 on sentiment at workspace: all 400 outputs identical, "
                                    "answers equal, scores within 0.001 of the openai runner's")
    assert f"  recorded the verification in {SUMMARY_V2}: commit it" in result.output
    verification = summary(registry)["verification"]
    assert verification["status"] == "reproduced" and "from the DVC cache object of md5" in verification["detail"]
    git(registry, "add", "-A")
    git(registry, "commit", "-q", "-m", "verified openai eval")
    ok(runner.invoke(cli, ["release", "sentiment-v2", "v1.0.0"]))


def write_evalset(repo: Path, runner, lines: list[dict]) -> None:
    (repo / "evalsets/mixed.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    ok(runner.invoke(cli, ["evalset", "add", "evalsets/mixed.jsonl"]))


@pytest.mark.slow
def test_top_logprobs_end_of_sequence_is_a_counted_miss_not_an_abort(registry, runner, proxied_v2):
    # inputs without sentiment: the demo model's greedy next token is </s>, so the server lists no position
    neutral = [{"id": f"n{i}", "input": text, "expected": "positive", "labels": ["positive", "negative"]}
               for i, text in enumerate(["the", "the the", "a the"])]
    scored = [{"id": "p1", "input": "the food was great", "expected": "positive", "labels": ["positive", "negative"]},
              {"id": "p2", "input": "the service was awful", "expected": "negative",
               "labels": ["positive", "negative"]}]
    write_evalset(registry, runner, neutral + scored)
    params = registry / "params.yaml"
    params.write_text(params.read_text().replace("scoring: echo ", "scoring: top_logprobs "))
    command = ["eval", "sentiment-v2", "--evalset", "mixed", "--runner", "openai", "--url", proxied_v2.url]
    result = ok(runner.invoke(cli, command))
    # the two with sentiment have their answer within the top 20 and the other label outside it
    assert ("  top_logprobs: 5 examples with a label outside the top 20, 3 of them with none within "
            "(no answer: counted wrong)") in result.output
    doc = json.loads((registry / "metrics/sentiment-v2/mixed.json").read_text())
    assert doc["params"]["openai"]["top_logprobs"] == 20
    assert (doc["runner"]["outside_top_k"], doc["runner"]["unanswered"]) == (5, 3)
    assert doc["metrics"]["accuracy"] == 0.4          # the two scored ones right, the three misses wrong
    outputs = [json.loads(line) for line in (registry / "metrics/sentiment-v2/mixed.outputs.jsonl").open()]
    assert [o["label"] for o in outputs[:3]] == [None, None, None]
    assert [o["correct"] for o in outputs] == [False, False, False, True, True]
    assert [list(o["scores"]) for o in outputs[3:]] == [["positive"], ["negative"]]
    # k is a recorded setting: changing it is a new run
    params.write_text(params.read_text().replace("top_logprobs: 20 ", "top_logprobs: 2 "))
    again = ok(runner.invoke(cli, command))
    assert again.output.startswith("Evaluated ")
    assert json.loads((registry / "metrics/sentiment-v2/mixed.json").read_text())["params"]["openai"]["top_logprobs"] == 2
