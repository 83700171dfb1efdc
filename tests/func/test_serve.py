"""`git model serve` as a real process on 127.0.0.1 over the demo checkpoints: answers, the canary split,
following the tags, the production log, bad requests.

The `released` fixture: ONE model, `sentiment`, released as v1.0.0 (demo v1 weights), v1.2.0 (v2) and
v1.10.0 (v3).
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest

from gitmodel import prodlog
from tests.conftest import git, snapshot_tree
from tests.func.servekit import Server, wait_for
from tests.func.stagekit import MODEL, gm, gm_ok

pytestmark = pytest.mark.slow

V1, V2, V3 = "v1.0.0", "v1.2.0", "v1.10.0"


def inputs(demo_dir, n: int) -> list[str]:
    lines = (demo_dir / "sentiment.jsonl").read_text().splitlines()
    return [json.loads(line)["input"] for line in lines[:n]]


def log_records(log_dir) -> list[dict]:
    return list(prodlog.read([log_dir], strict=True))


def test_answers_match_llama_cpp_in_process_and_every_request_is_logged(released, demo_dir, tmp_path):
    import llama_cpp

    gm_ok("promote", MODEL, V2, "--stage", "prod")
    before = snapshot_tree(released)
    prompts = inputs(demo_dir, 12)
    llm = llama_cpp.Llama(model_path=str(demo_dir / "sentiment-v2.gguf"), n_ctx=2048, n_threads=1, seed=0,
                          verbose=False)
    expected = [llm.create_completion(p, max_tokens=64, temperature=0, seed=0)["choices"][0]["text"] for p in prompts]
    llm.close()
    assert set(expected) == {" positive", " negative"}
    with Server(released, MODEL, log_dir=tmp_path / "logs") as server:
        client = server.client()
        for prompt, want in zip(prompts, expected):
            answer = client.complete(prompt)
            assert answer.status == 200 and (answer.version, answer.stage) == (V2, "prod")
            assert answer.json()["choices"][0]["text"] == want
            assert answer.json()["model"] == f"{MODEL}@{V2}"
            chat = client.chat(prompt, user="ann")
            assert chat.json()["choices"][0]["message"]["content"] == want
        models = client.request("GET", "/v1/models").json()
        assert models["data"][0]["id"] == MODEL and models["data"][0]["versions"][0]["version"] == V2
    records = log_records(tmp_path / "logs")
    assert len(records) == 2 * len(prompts)
    first = records[0]
    assert list(first)[:11] == ["schema_version", "id", "ts", "model", "version", "stage", "input", "output",
                                "label", "confidence", "output_tokens"]
    assert (first["model"], first["version"], first["stage"], first["input"], first["status"]) == \
        (MODEL, V2, "prod", prompts[0], 200)
    assert first["label"] == expected[0].strip() and first["output"] == expected[0]
    assert records[1]["user"] and "ann" not in records[1]["user"]
    assert [p.name for p in (tmp_path / "logs").iterdir()] == [f"{MODEL}-{first['ts'][:10]}.jsonl"]
    # the checkpoints came from the DVC cache into the server's cache folder: the workspace is untouched
    assert snapshot_tree(released) == before
    assert (released / ".dvc/tmp/gitmodel/serve-cache").is_dir()


def test_a_served_label_is_logged_with_the_confidence_the_eval_gave_the_same_input(released, demo_dir, tmp_path):
    gm_ok("promote", MODEL, V2, "--stage", "prod")
    examples = [json.loads(line) for line in (demo_dir / "sentiment.jsonl").read_text().splitlines()[:40]]
    stored = {json.loads(line)["id"]: json.loads(line) for line in
              git(released, "show", f"{MODEL}@{V2}:metrics/{MODEL}/sentiment.outputs.jsonl").splitlines()}
    with Server(released, MODEL, log_dir=tmp_path / "logs") as server:
        client = server.client()
        for example in examples:
            assert client.complete(example["input"], max_tokens=1).status == 200
            assert client.chat(example["input"]).status == 200       # the completion before moved the cache
    records = log_records(tmp_path / "logs")
    assert len(records) == 2 * len(examples)
    for example, completion, chat in zip(examples, records[::2], records[1::2]):
        want = stored[example["id"]]
        for record in (completion, chat):
            assert record["label"] == want["output"]
            assert record["confidence"] == want["confidence"]


def test_a_canary_at_0_1_takes_a_tenth_of_traffic_and_sticky_users_stay_put(released, tmp_path):
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    gm_ok("promote", MODEL, V2, "--stage", "canary", "--fraction", "0.1")
    with Server(released, MODEL, log_dir=tmp_path / "logs") as server:
        versions: list[str] = []

        def send(n: int) -> None:
            client = server.client()
            for i in range(n):
                versions.append(client.complete("the food was good", max_tokens=1).version)

        threads = [threading.Thread(target=send, args=(250,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        counts = Counter(versions)
        assert sum(counts.values()) == 1000 and set(counts) == {V1, V2}
        assert 0.07 <= counts[V2] / 1000 <= 0.13, counts
        client = server.client()
        seen = {}
        for round_ in range(3):
            for user in range(60):
                answer = client.complete("the food was good", max_tokens=1, user=f"user-{user}")
                seen.setdefault(user, set()).add((answer.version, answer.stage))
        assert all(len(v) == 1 for v in seen.values())
        assert {next(iter(v)) for v in seen.values()} == {(V1, "prod"), (V2, "canary")}
    stages = Counter((r["version"], r["stage"]) for r in log_records(tmp_path / "logs"))
    assert set(stages) == {(V1, "prod"), (V2, "canary")}


def test_the_server_follows_canary_end_promotion_and_rollback_with_no_failed_request(released, tmp_path):
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    with Server(released, MODEL, log_dir=tmp_path / "logs", poll=0.1) as server:
        answers: list[tuple[int, str, str]] = []
        stop = threading.Event()

        def keep_sending() -> None:
            client = server.client()
            while not stop.is_set():
                a = client.complete("the service was not good", max_tokens=2)
                answers.append((a.status, a.version, a.stage))

        sender = threading.Thread(target=keep_sending)
        sender.start()
        try:
            def serving(version: str, stage: str = "prod"):
                return lambda: answers and answers[-1][1:] == (version, stage)

            wait_for(serving(V1))
            gm_ok("promote", MODEL, V2, "--stage", "canary", "--fraction", "0.5")
            wait_for(lambda: any(a[1:] == (V2, "canary") for a in answers[-20:]))
            gm_ok("end", MODEL, "--stage", "canary")
            mark = len(answers)
            wait_for(lambda: len(answers) > mark + 20 and all(a[1:] == (V1, "prod") for a in answers[-20:]))
            gm_ok("promote", MODEL, V2, "--stage", "prod")
            wait_for(lambda: all(a[1:] == (V2, "prod") for a in answers[-10:]) and len(answers) > 10)
            gm_ok("rollback", MODEL)
            wait_for(lambda: all(a[1:] == (V1, "prod") for a in answers[-10:]))
        finally:
            stop.set()
            sender.join()
        assert len(answers) > 30
        assert {a[0] for a in answers} == {200}
        health = server.client().request("GET", "/health").json()
        assert health["prod"]["version"] == V1 and health["canary"] is None


def test_sighup_rereads_the_tags_at_once(released, tmp_path):
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    with Server(released, MODEL, poll=0) as server:
        client = server.client()
        assert client.complete("good", max_tokens=1).version == V1
        gm_ok("promote", MODEL, V2, "--stage", "prod")
        time.sleep(0.5)
        assert client.complete("good", max_tokens=1).version == V1      # poll 0: tags read on SIGHUP only
        server.hup()
        wait_for(lambda: client.complete("good", max_tokens=1).version == V2)


def test_sigkill_under_load_leaves_whole_lines_and_a_restart_appends(released, tmp_path):
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    logs = tmp_path / "logs"
    server = Server(released, MODEL, log_dir=logs).start()
    stop = threading.Event()

    def load() -> None:
        client = server.client()
        while not stop.is_set():
            try:
                client.complete("the delivery was late and the pizza was cold", max_tokens=4)
            except OSError:
                return

    threads = [threading.Thread(target=load) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        wait_for(lambda: logs.is_dir() and sum(1 for _ in log_records(logs)) >= 40, timeout=120)
        server.kill()
    finally:
        stop.set()
        for t in threads:
            t.join()
        server.stop()
    data = b"".join(p.read_bytes() for p in sorted(logs.iterdir()))
    assert data.endswith(b"\n")
    lines = data.splitlines()
    assert all(json.loads(line)["status"] == 200 for line in lines)
    with Server(released, MODEL, log_dir=logs) as again:
        again.client().complete("good", max_tokens=1)
    after = b"".join(p.read_bytes() for p in sorted(logs.iterdir()))
    assert after.startswith(data) and len(after.splitlines()) == len(lines) + 1


BAD = [
    ("not JSON", "/v1/completions", b"{bad", 400, "invalid_json"),
    ("a JSON list", "/v1/completions", b"[1, 2]", 400, "invalid_json"),
    ("no prompt", "/v1/completions", {"max_tokens": 4}, 400, "missing_field"),
    ("empty prompt", "/v1/completions", {"prompt": "  "}, 400, "empty_prompt"),
    ("prompt not a string", "/v1/completions", {"prompt": 42}, 400, "invalid_type"),
    ("max_tokens a string", "/v1/completions", {"prompt": "hi", "max_tokens": "8"}, 400, "invalid_value"),
    ("max_tokens above the cap", "/v1/completions", {"prompt": "hi", "max_tokens": 100000}, 400,
     "max_tokens_too_large"),
    ("temperature out of range", "/v1/completions", {"prompt": "hi", "temperature": 9}, 400, "invalid_value"),
    ("seed a float", "/v1/completions", {"prompt": "hi", "seed": 1.5}, 400, "invalid_type"),
    ("stop a number", "/v1/completions", {"prompt": "hi", "stop": 3}, 400, "invalid_type"),
    ("user a number", "/v1/completions", {"prompt": "hi", "user": 7}, 400, "invalid_type"),
    ("unknown model", "/v1/completions", {"prompt": "hi", "model": "gpt-4"}, 404, "model_not_found"),
    ("no messages", "/v1/chat/completions", {"prompt": "hi"}, 400, "missing_field"),
    ("messages not a list", "/v1/chat/completions", {"messages": "hi"}, 400, "invalid_type"),
    ("message without content", "/v1/chat/completions", {"messages": [{"role": "user"}]}, 400, "invalid_type"),
    ("unknown role", "/v1/chat/completions", {"messages": [{"role": "robot", "content": "hi"}]}, 400,
     "invalid_value"),
    ("no user message", "/v1/chat/completions", {"messages": [{"role": "system", "content": "be nice"}]}, 400,
     "empty_prompt"),
    ("body too large", "/v1/completions", {"prompt": "x" * 5000}, 413, "request_too_large"),
]


def test_every_bad_request_gets_its_4xx_and_the_server_keeps_serving(released, tmp_path):
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    with Server(released, MODEL, "--max-body-bytes", "4096", "--max-tokens-cap", "256",
                log_dir=tmp_path / "logs") as server:
        client = server.client()
        for what, path, body, status, code in BAD:
            answer = client.request("POST", path, body, {"Content-Type": "application/json"})
            assert answer.status == status, (what, answer.body)
            error = answer.json()["error"]
            assert error["code"] == code and error["message"] and error["type"], what
            assert answer.version == V1, what
        assert client.request("GET", "/v1/nothing").status == 404
        assert client.request("GET", "/v1/completions").status == 405
        assert client.complete("good").status == 200
        metrics = client.request("GET", "/metrics").body.decode()
        assert 'gitmodel_request_errors_total{model="sentiment",version="",stage="",kind="client"}' in metrics
    # refused before routing: counted, not logged (the log holds what a model saw and said)
    assert len(log_records(tmp_path / "logs")) == 1


def test_a_prompt_beyond_the_context_is_a_400_logged_for_its_version(released, tmp_path):
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    with Server(released, MODEL, log_dir=tmp_path / "logs") as server:
        answer = server.client().complete("good " * 3000)
        assert answer.status == 400 and answer.json()["error"]["code"] == "context_length_exceeded"
        assert server.client().complete("good").status == 200
    assert [r["status"] for r in log_records(tmp_path / "logs")] == [400, 200]


def test_an_api_key_from_the_environment_is_required_on_v1(released):
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    with Server(released, MODEL, "--api-key-env", "SERVE_KEY", env={"SERVE_KEY": "s3cret"}) as server:
        client = server.client()
        assert client.complete("good").status == 401
        assert client.request("POST", "/v1/completions", {"prompt": "good"},
                              {"Authorization": "Bearer wrong"}).status == 401
        assert client.request("POST", "/v1/completions", {"prompt": "good"},
                              {"Authorization": "Bearer s3cret"}).status == 200
        assert client.request("GET", "/health").status == 200


def test_a_version_that_fails_to_load_keeps_the_old_one_serving(released, tmp_path):
    from tests.func.stagekit import release_md5

    gm_ok("promote", MODEL, V1, "--stage", "prod")
    with Server(released, MODEL, poll=0.1) as server:
        client = server.client()
        assert client.complete("good").version == V1
        md5 = release_md5(released, V2)
        (released / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).unlink()
        gm_ok("promote", MODEL, V2, "--stage", "prod")
        health = wait_for(lambda: (h := client.request("GET", "/health").json())["problems"] and h)
        assert health["prod"]["version"] == V1
        assert f"{MODEL}@{V2} (prod, md5 {md5}) could not be loaded: object {md5} is not in the local DVC cache" \
            in health["problems"][md5]
        assert client.complete("good").version == V1
    assert f"could not be loaded: object {md5}" in server.stderr()


def test_streaming_sends_the_answer_as_server_sent_events(released):
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    with Server(released, MODEL) as server:
        answer = server.client().complete("the food was great", stream=True)
        assert answer.status == 200 and answer.headers["content-type"].startswith("text/event-stream")
        events = [e for e in answer.body.decode().split("\n\n") if e]
        assert events[-1] == "data: [DONE]"
        assert json.loads(events[0][len("data: "):])["choices"][0]["text"].strip() in ("positive", "negative")


def test_serving_an_unknown_model_is_an_error(released):
    from tests.func.stagekit import gm

    result = gm("serve", "sentimnet", "--port", "0")
    assert result.exit_code == 3
    assert result.stderr.splitlines()[0].startswith("Error: unknown model 'sentimnet': did you mean")
    assert git(released, "status", "--porcelain") == ""


def test_git_model_drift_reads_the_log_the_server_wrote(released, demo_dir, tmp_path):
    """The monitors read the server's log as it is: every line a record, and `git model drift` takes
    the folder."""
    gm_ok("promote", MODEL, V2, "--stage", "prod")
    with Server(released, MODEL, log_dir=tmp_path / "logs") as server:
        client = server.client()
        for prompt in inputs(demo_dir, 120):
            assert client.chat(prompt).status == 200
    stats = prodlog.ReadStats()
    assert len(list(prodlog.read([tmp_path / "logs"], model=MODEL, stats=stats))) == 120
    assert stats.malformed == 0
    result = gm("drift", MODEL, "--log", str(tmp_path / "logs"), "--json")
    assert result.exit_code in (0, 1), result.stderr      # the test's inputs are not the eval set's mix
    report = json.loads(result.stdout)
    assert report["current"]["n"] == 120 and report["read"]["malformed"] == 0
    bands = {s["signal"]: s["band"] for s in report["signals"]}
    # the eval set's categories are not in a served request: not logged, so no data, never an alert
    assert bands["input.category"] == "no data"
    assert bands["output.label"] != "no data"
    # a served answer (" positive", its first token's space) is as long as the eval's bare label
    assert bands["output.chars"] == "stable"
    # a served label carries its confidence, scored as the eval scores it
    assert bands["output.confidence"] != "no data"
