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


@pytest.fixture(scope="session")
def llama_server(demo_model, tmp_path_factory):
    """``python -m llama_cpp.server`` on a free port over the demo checkpoint; its /v1 URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(demo_model), "--host", "127.0.0.1",
             "--port", str(port), "--logits_all", "true", "--n_ctx", "512", "--n_threads", "1"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not ready after {SERVER_START_SECONDS} s:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
