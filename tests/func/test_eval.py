"""`git model eval` on real llama.cpp over the demo checkpoints, in real git + DVC repositories."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitmodel import metrics, resultfiles
from gitmodel.cli import cli
from tests.conftest import git, snapshot_tree, status_porcelain

EVAL = ["eval", "sentiment-v2", "--evalset", "sentiment"]


def load(repo: Path, model: str) -> dict:
    doc = json.loads((repo / f"metrics/{model}/sentiment.json").read_text())
    resultfiles.validate_metrics(doc, model)
    return doc


def test_demo_models_rank_as_designed(registry, runner):
    for model in ("sentiment-v1", "sentiment-v2", "sentiment-v3"):
        result = runner.invoke(cli, ["eval", model, "--evalset", "sentiment"])
        assert result.exit_code == 0, result.output + result.stderr
        assert "Evaluated" in result.output
    v1, v2, v3 = (load(registry, f"sentiment-{v}")["metrics"] for v in ("v1", "v2", "v3"))
    assert v2["accuracy"] > v1["accuracy"]
    assert 0.85 < v2["accuracy"] < 1.0          # the negation slice keeps v2 honest
    assert v3["accuracy"] < v2["accuracy"]
    # v3's bias: more "positive" answers, more false positives, further from the expected distribution
    assert v3["label_distribution"]["positive"] > v2["label_distribution"]["positive"]
    assert v3["labels"]["positive"]["fpr"] > v2["labels"]["positive"]["fpr"]
    assert v3["label_psi"] > v2["label_psi"]
    assert v2["n"] == v1["n"] == 400


def test_metrics_file_records_provenance_and_outputs_one_line_per_example(registry, runner):
    assert runner.invoke(cli, EVAL).exit_code == 0
    doc = load(registry, "sentiment-v2")
    dvc_file = (registry / "models/sentiment-v2.gguf.dvc").read_text()
    assert doc["model"] == {"name": "sentiment-v2", "path": "models/sentiment-v2.gguf",
                            "md5": doc["model"]["md5"]} and doc["model"]["md5"] in dvc_file
    assert doc["evalset"]["md5"] in (registry / "evalsets/sentiment.jsonl.dvc").read_text()
    assert doc["params"]["temperature"] == 0 and doc["params"]["seed"] == 0
    assert doc["runner"]["name"] == "llama" and doc["runner"]["llama_cpp_version"]
    lines = (registry / "metrics/sentiment-v2/sentiment.outputs.jsonl").read_text().splitlines()
    ids = [json.loads(line)["id"] for line in lines]
    expected_ids = [json.loads(line)["id"] for line in (registry / "evalsets/sentiment.jsonl").read_text().splitlines()]
    assert ids == expected_ids
    first = json.loads(lines[0])
    assert list(first) == ["id", "output", "label", "confidence", "correct", "tie", "output_tokens", "scores"]
    assert "latency" not in lines[0]
    for line in lines[:20]:
        resultfiles.validate_output(json.loads(line), "outputs")


def test_outputs_are_byte_identical_across_runs(registry, runner):
    assert runner.invoke(cli, EVAL).exit_code == 0
    first = (registry / "metrics/sentiment-v2/sentiment.outputs.jsonl").read_bytes()
    result = runner.invoke(cli, [*EVAL, "--force"])
    assert result.exit_code == 0 and "Evaluated" in result.output
    assert (registry / "metrics/sentiment-v2/sentiment.outputs.jsonl").read_bytes() == first


def test_cache_hit_returns_at_once_and_force_reruns(registry, runner):
    assert runner.invoke(cli, EVAL).exit_code == 0
    summary = registry / "metrics/sentiment-v2/sentiment.json"
    mtime = summary.stat().st_mtime_ns
    started = time.perf_counter()
    result = runner.invoke(cli, EVAL)
    assert result.exit_code == 0
    assert result.output.startswith("Up to date: metrics/sentiment-v2/sentiment.json")
    assert time.perf_counter() - started < 0.5
    assert summary.stat().st_mtime_ns == mtime
    # a changed eval param invalidates the cached result
    params = registry / "params.yaml"
    params.write_text(params.read_text().replace("seed: 0 ", "seed: 1 "))
    result = runner.invoke(cli, EVAL)
    assert "Evaluated" in result.output
    assert load(registry, "sentiment-v2")["params"]["seed"] == 1


def test_json_output(registry, runner):
    result = runner.invoke(cli, [*EVAL, "--json"])
    data = json.loads(result.output)
    assert data["cached"] is False and data["metrics"]["n"] == 400
    assert data["metrics_path"] == "metrics/sentiment-v2/sentiment.json"


def test_dvc_repro_evaluates_once_then_only_what_changed(registry):
    def repro() -> str:
        proc = subprocess.run(["dvc", "repro"], cwd=registry, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    out = repro()
    assert out.count("Running stage 'eval@") == 3
    assert all((registry / f"metrics/sentiment-{v}/sentiment.json").is_file() for v in ("v1", "v2", "v3"))
    out = repro()
    assert "Running stage" not in out
    git(registry, "add", "-A")
    git(registry, "commit", "-q", "-m", "metrics")
    # new weights for v1 only: exactly one pair is re-evaluated
    shutil.copy(registry / "models/sentiment-v2.gguf", registry / "models/sentiment-v1.gguf")
    subprocess.run(["git", "model", "add", "models/sentiment-v1.gguf"], cwd=registry, check=True,
                   capture_output=True)
    out = repro()
    assert out.count("Running stage 'eval@") == 1 and "eval@sentiment-v1-sentiment" in out
    # dvc reads our metrics as they are
    proc = subprocess.run(["dvc", "metrics", "diff", "HEAD", "--json"], cwd=registry, capture_output=True,
                          text=True, check=True)
    diff = json.loads(proc.stdout)["metrics/sentiment-v1/sentiment.json"]
    assert diff["metrics.accuracy"]["new"] > diff["metrics.accuracy"]["old"]


# ---------------------------------------------------------------- bad inputs: clear error, nothing written


def assert_refused(result, phrase: str, repo: Path, before: dict, code: int = 3) -> None:
    assert result.exit_code == code, (result.output, result.stderr)
    assert result.stderr.startswith("Error: ")
    assert phrase in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot_tree(repo) == before


def test_model_missing_from_workspace_says_how_to_get_it(registry, runner):
    (registry / "models/sentiment-v2.gguf").unlink()
    before = snapshot_tree(registry)
    result = runner.invoke(cli, EVAL)
    assert_refused(result, "models/sentiment-v2.gguf is tracked (md5 ", registry, before)
    assert "dvc checkout models/sentiment-v2.gguf.dvc" in result.stderr and "dvc pull" in result.stderr


def test_untracked_model(registry, runner):
    before = snapshot_tree(registry)
    result = runner.invoke(cli, ["eval", "chat", "--evalset", "sentiment"])
    assert_refused(result, "model 'chat' is not tracked", registry, before)
    assert "git model add models/chat.gguf" in result.stderr


def test_workspace_model_differs_from_tracked(registry, runner):
    shutil.copy(registry / "models/sentiment-v3.gguf", registry / "models/sentiment-v2.gguf")
    before = snapshot_tree(registry)
    result = runner.invoke(cli, EVAL)
    assert_refused(result, "models/sentiment-v2.gguf: the workspace model differs from what DVC tracks", registry,
                   before)


def test_invalid_gguf_is_caught_before_llama_cpp(registry, runner):
    # tracked behind git-model's back, so that only eval's own check stands between it and llama.cpp
    bad = registry / "models/broken.gguf"
    bad.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + (10**15).to_bytes(8, "little") * 2)
    subprocess.run(["dvc", "add", "models/broken.gguf"], cwd=registry, check=True, capture_output=True)
    before = snapshot_tree(registry)
    result = runner.invoke(cli, ["eval", "broken", "--evalset", "sentiment"])
    assert_refused(result, "models/broken.gguf: not a valid GGUF file", registry, before)


def test_evalset_changed_since_tracked(registry, runner):
    path = registry / "evalsets/sentiment.jsonl"
    path.write_text(path.read_text() + '{"id": "new", "input": "fine", "expected": "positive", '
                                       '"labels": ["positive", "negative"]}\n')
    before = snapshot_tree(registry)
    result = runner.invoke(cli, EVAL)
    assert_refused(result, "evalsets/sentiment.jsonl: the eval set changed since it was tracked", registry, before)
    assert "git model evalset add evalsets/sentiment.jsonl" in result.stderr


def test_unreachable_endpoint(registry, runner):
    before = snapshot_tree(registry)
    result = runner.invoke(cli, [*EVAL, "--runner", "openai", "--url", "http://127.0.0.1:9/v1"])
    assert_refused(result, "http://127.0.0.1:9/v1", registry, before)


def test_garbage_answering_endpoint(registry, runner):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading

    class Garbage(BaseHTTPRequestHandler):
        def do_POST(self):
            if self.command == "POST":
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"<html>surprise</html>")

        do_GET = do_POST

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        before = snapshot_tree(registry)
        url = f"http://127.0.0.1:{server.server_port}/v1"
        result = runner.invoke(cli, [*EVAL, "--runner", "openai", "--url", url])
        assert_refused(result, url, registry, before)
        assert "JSON" in result.stderr
    finally:
        server.shutdown()


def test_python_entry_that_cannot_be_imported(registry, runner):
    before = snapshot_tree(registry)
    result = runner.invoke(cli, [*EVAL, "--runner", "python", "--entry", "nosuchpkg.mod:predict"])
    assert_refused(result, "nosuchpkg.mod", registry, before)


def test_python_entry_with_wrong_shape(registry, runner):
    (registry / "shapes.py").write_text("def predict(inputs):\n    return ['positive']\n")
    before = snapshot_tree(registry)
    result = runner.invoke(cli, [*EVAL, "--runner", "python", "--entry", "shapes:predict"])
    assert_refused(result, "returned 1 results for 256 inputs", registry, before)


def test_python_runner_on_a_keyword_classifier(registry, runner):
    (registry / "kw.py").write_text(
        "def predict(inputs):\n"
        "    return [('negative', 0.9) if ' not ' in f' {t} ' or 'awful' in t else ('positive', 0.6) for t in inputs]\n")
    result = runner.invoke(cli, ["eval", "kw", "--evalset", "sentiment", "--runner", "python", "--entry", "kw:predict"])
    assert result.exit_code == 0, result.stderr
    doc = load(registry, "kw")
    assert doc["runner"]["name"] == "python" and doc["model"]["path"] == "kw.py"
    assert 0.3 < doc["metrics"]["accuracy"] < 1.0


# ---------------------------------------------------------------- living with people and machines


def test_interrupt_leaves_previous_metrics_intact(registry, runner, monkeypatch):
    assert runner.invoke(cli, EVAL).exit_code == 0
    before = snapshot_tree(registry)
    from gitmodel.runners import llama

    def interrupted(self, examples, progress=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(llama.LlamaRunner, "predict", interrupted)
    result = runner.invoke(cli, [*EVAL, "--force"])
    assert result.exit_code == 130
    assert snapshot_tree(registry) == before
    assert not list(registry.rglob(".gitmodel-tmp-*"))


def test_second_writer_fails_naming_the_holder(registry, runner):
    from gitmodel import locking, project

    before = snapshot_tree(registry)
    with locking.repository_lock(registry / project.STATE_DIR, command="git model eval other --evalset x"):
        result = runner.invoke(cli, EVAL)
    assert_refused(result, f"holds the repository lock: pid {os.getpid()}", registry, before)
    assert "git model eval other --evalset x" in result.stderr and "--wait" in result.stderr


def test_lock_of_a_killed_process_is_recovered(registry, runner):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from gitmodel import locking\n"
        "with locking.repository_lock(Path(sys.argv[1]), command='stuck'):\n"
        "    print('locked', flush=True); time.sleep(60)\n"), str(registry / ".dvc/tmp/gitmodel")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert runner.invoke(cli, EVAL).exit_code == 3
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        result = runner.invoke(cli, EVAL)
        assert result.exit_code == 0, result.stderr
    finally:
        holder.kill()


def test_wait_for_the_lock(registry, runner):
    import threading

    from gitmodel import locking, project

    released = threading.Event()

    def hold():
        with locking.repository_lock(registry / project.STATE_DIR, command="holder"):
            time.sleep(1.0)
        released.set()

    t = threading.Thread(target=hold)
    t.start()
    time.sleep(0.2)
    result = runner.invoke(cli, [*EVAL, "--wait", "30"])
    t.join()
    assert result.exit_code == 0, result.stderr
    assert "Waiting for the repository lock held by" in result.stderr and released.is_set()


def test_generation_examples(registry, runner):
    """Examples without labels are generated greedily; length metrics and refusals come out."""
    (registry / "evalsets/gen.jsonl").write_text(
        '{"id": "g1", "input": "the food was great", "expected": "positive"}\n'
        '{"id": "g2", "input": "the food was awful"}\n'
        '{"id": "g3", "input": "the staff was rude", "expected": "negative"}\n')
    assert runner.invoke(cli, ["evalset", "add", "evalsets/gen.jsonl"]).exit_code == 0
    result = runner.invoke(cli, ["eval", "sentiment-v2", "--evalset", "gen"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads((registry / "metrics/sentiment-v2/gen.json").read_text())
    m = doc["metrics"]
    assert m["n"] == 3 and m["accuracy"] == 1.0 and m["refusal_rate"] == 0.0
    assert m["output_tokens"]["mean"] >= 1 and "tokens_per_second" in m
    outputs = [json.loads(x) for x in (registry / "metrics/sentiment-v2/gen.outputs.jsonl").read_text().splitlines()]
    assert [o["output"].strip() for o in outputs] == ["positive", "negative", "negative"]
    assert all(o["label"] is None and o["scores"] is None for o in outputs)


# ---------------------------------------------------------------- a model that misbehaves, a file edited twice


def _corrupt_weights(path: Path, tensor: str = "output.weight") -> None:
    """Overwrite one tensor's data with NaN float32s: still a well-formed GGUF file, broken weights."""
    import numpy as np

    from gitmodel import gguf

    info = gguf.read_info(path)
    t = next(t for t in info.tensors if t.name == tensor)
    assert t.type_name == "F32"
    with open(path, "r+b") as f:
        f.seek(info.data_offset + t.offset)
        f.write(np.full(t.n_elements, np.nan, dtype=np.float32).tobytes())


def test_corrupted_weights_name_the_example_that_got_nan(registry, runner):
    assert runner.invoke(cli, EVAL).exit_code == 0
    _corrupt_weights(registry / "models/sentiment-v2.gguf")
    assert runner.invoke(cli, ["add", "models/sentiment-v2.gguf"]).exit_code == 0
    before = snapshot_tree(registry)
    first = json.loads((registry / "evalsets/sentiment.jsonl").read_text().splitlines()[0])["id"]
    result = runner.invoke(cli, [*EVAL, "--force"])
    assert_refused(result, "the model produced NaN or infinite label scores", registry, before)
    assert f"for example {first!r} (line 1)" in result.stderr
    assert "edited by hand" not in result.stderr and "--force" not in result.stderr
    assert "hint: the checkpoint is likely corrupted" in result.stderr


def test_corrupted_weights_in_generation_name_the_example(registry, runner):
    (registry / "evalsets/gen.jsonl").write_text('{"id": "g1", "input": "the food was"}\n')
    assert runner.invoke(cli, ["evalset", "add", "evalsets/gen.jsonl"]).exit_code == 0
    _corrupt_weights(registry / "models/sentiment-v2.gguf")
    assert runner.invoke(cli, ["add", "models/sentiment-v2.gguf"]).exit_code == 0
    before = snapshot_tree(registry)
    result = runner.invoke(cli, ["eval", "sentiment-v2", "--evalset", "gen"])
    assert_refused(result, "the model produced NaN logits for example 'g1' (line 1)", registry, before)


def test_an_input_longer_than_the_training_context_is_evaluated_with_a_warning(registry, runner):
    from gitmodel import gguf

    trained = gguf.read_info(registry / "models/sentiment-v2.gguf").context_length
    n_ctx = yaml_eval_n_ctx(registry)
    assert trained < n_ctx                       # the demo: 512 trained, 2048 loaded
    lines = ['{"id": "short", "input": "good food", "expected": "positive", "labels": ["positive", "negative"]}',
             json.dumps({"id": "long", "input": " ".join(["good"] * (trained + 100)), "expected": "positive",
                         "labels": ["positive", "negative"]}),
             json.dumps({"id": "fits", "input": " ".join(["bad"] * (trained // 2)), "expected": "negative",
                         "labels": ["positive", "negative"]})]
    (registry / "evalsets/long.jsonl").write_text("\n".join(lines) + "\n")
    assert runner.invoke(cli, ["evalset", "add", "evalsets/long.jsonl"]).exit_code == 0
    result = runner.invoke(cli, ["eval", "sentiment-v2", "--evalset", "long"])
    assert result.exit_code == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]
    assert len(warning) == 1, result.stderr
    assert warning[0].startswith(f"Warning: 1 example is longer than the context sentiment-v2.gguf was trained on "
                                 f"({trained} tokens, its context_length), though within eval.n_ctx ({n_ctx}): "
                                 f"'long' (line 2, ")
    assert "'short'" not in warning[0] and "'fits'" not in warning[0]
    as_json = json.loads(runner.invoke(cli, ["eval", "sentiment-v2", "--evalset", "long", "--force", "--json"]).stdout)
    assert len(as_json["warnings"]) == 1 and "'long' (line 2, " in as_json["warnings"][0]
    # within the training context: no warning
    result = runner.invoke(cli, EVAL)
    assert result.exit_code == 0 and "Warning" not in result.stderr


def yaml_eval_n_ctx(repo: Path) -> int:
    from gitmodel import params

    return params.eval_params(repo)["n_ctx"]


def test_a_metrics_file_with_a_duplicate_key_is_refused_naming_line_and_key(registry, runner):
    assert runner.invoke(cli, EVAL).exit_code == 0
    path = registry / "metrics/sentiment-v2/sentiment.json"
    text = path.read_text()
    accuracy = next(line for line in text.splitlines() if line.strip().startswith('"accuracy"'))
    edited = text.replace(accuracy, f'{accuracy}\n{accuracy.split(":")[0]}: 0.99,', 1)
    path.write_text(edited)
    git(registry, "add", "-A")
    git(registry, "commit", "-q", "-m", "metrics with accuracy twice")
    line = edited.splitlines().index(f'{accuracy.split(":")[0]}: 0.99,') + 1
    result = runner.invoke(cli, ["show", "HEAD"])
    assert result.exit_code == 3, (result.stdout, result.stderr)
    assert result.stderr.startswith("Error: metrics/sentiment-v2/sentiment.json at HEAD: not valid JSON: "
                                     f"duplicate key 'accuracy': line {line} column 5")


@pytest.mark.parametrize("argv, phrase", [
    (["eval", "Sentiment", "--evalset", "sentiment"], "Invalid value for 'MODEL': invalid model name 'Sentiment'"),
    (["eval", "sentiment-v2", "--evalset", "bad set"], "Invalid value for '--evalset' / '-e': invalid eval set name"),
    (["eval", "sentiment-v2", "--evalset", "sentiment", "--wait", "-5"],
     "Invalid value for '--wait': -5 is not a number of seconds >= 0"),
    (["eval", "sentiment-v2", "--evalset", "sentiment", "--wait", "nan"], "Invalid value for '--wait'"),
])
def test_eval_usage_errors_exit_2(registry, runner, argv, phrase):
    before = snapshot_tree(registry)
    result = runner.invoke(cli, argv, prog_name="git model")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert phrase in result.stderr
    assert "Try 'git model eval -h' for help." in result.stderr
    assert snapshot_tree(registry) == before


# ---------------------------------------------------------------- Ctrl-C at any moment of a real `git model eval`

# Runs `git model eval` in a child process, after patching in the fault to inject: a pause (and a
# line "PHASE <name>" on stderr) at the moment the test wants SIGINT to land. Nothing else changes.
INTERRUPT_PRELUDE = r"""
import os, sys, time
phase = sys.argv.pop(1)
# llama-cpp-python points fd 2 at /dev/null while it loads a model: the marks go to a copy of it
marks = os.dup(2)

def mark(name, pause):
    os.write(marks, f"PHASE {name}\n".encode())
    time.sleep(pause)

if phase == "import":
    # while the command line itself is imported (click, the commands)
    import importlib.abc
    class Slow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "gitmodel.cli.history":
                mark("import", 0.5)
            return None
    sys.meta_path.insert(0, Slow())
elif phase == "inputs":
    # while eval checks its inputs (names, md5s, GGUF header), before the repository lock
    from gitmodel import evaluate
    resolve = evaluate.resolve_inputs
    def patched(*args, **kwargs):
        mark("inputs", 0.5)
        return resolve(*args, **kwargs)
    evaluate.resolve_inputs = patched
elif phase == "load":
    # inside llama.cpp's log callback, while the model loads: where a KeyboardInterrupt used to be
    # printed as "Exception ignored on calling ctypes callback function" and lost
    import llama_cpp
    make_callback = llama_cpp.llama_log_callback
    calls = [0]
    def patched(function):
        def callback(level, text, user_data):
            calls[0] += 1
            if calls[0] == 3:
                mark("load", 0.5)
            return function(level, text, user_data)
        return make_callback(callback)
    llama_cpp.llama_log_callback = patched
elif phase == "predict":
    from gitmodel.runners import llama
    classify = llama.LlamaRunner._classify
    seen = [0]
    def patched(self, example):
        seen[0] += 1
        if seen[0] == 200:
            mark("predict", 0.0)
        return classify(self, example)
    llama.LlamaRunner._classify = patched
elif phase == "write":
    from gitmodel import fsutil
    commit = fsutil.replace_all
    def patched(files, interrupt):
        mark("write", 0.5)
        return commit(files, interrupt)
    fsutil.replace_all = patched
elif phase == "render":
    # after the result is written, while the command line prints it
    from gitmodel.cli import evaluation
    headline = evaluation._headline
    def patched(doc):
        mark("render", 0.5)
        return headline(doc)
    evaluation._headline = patched
elif phase == "rename":
    # between the rename of outputs.jsonl and that of the summary
    replace = os.replace
    def patched(src, dst, *args, **kwargs):
        replace(src, dst, *args, **kwargs)
        if str(dst).endswith(".outputs.jsonl"):
            mark("rename", 0.5)
    os.replace = patched

from gitmodel.__main__ import main
main()
"""


@pytest.fixture(scope="module")
def big_repo_template(tmp_path_factory, demo_dir):
    """The demo v2 checkpoint as `sentiment`, the demo eval set ten times over (4,000 examples) as `big`,
    evaluated and committed."""
    from click.testing import CliRunner

    repo = tmp_path_factory.mktemp("interrupt") / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    lines = (demo_dir / "sentiment.jsonl").read_text().splitlines()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(repo)
        runner = CliRunner()
        assert runner.invoke(cli, ["init"]).exit_code == 0
        shutil.copy(demo_dir / "sentiment-v2.gguf", repo / "models/sentiment.gguf")
        examples = []
        for copy in range(10):
            for line in lines:
                example = json.loads(line)
                example["id"] = f"{example['id']}-{copy}"
                examples.append(json.dumps(example))
        (repo / "evalsets/big.jsonl").write_text("\n".join(examples) + "\n")
        for argv in (["add", "models/sentiment.gguf"], ["evalset", "add", "evalsets/big.jsonl"],
                     ["eval", "sentiment", "--evalset", "big"]):
            result = runner.invoke(cli, argv)
            assert result.exit_code == 0, (argv, result.stderr)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "sentiment evaluated on 4,000 examples")
    return repo


@pytest.fixture
def big_repo(big_repo_template, tmp_path):
    repo = tmp_path / "big"
    shutil.copytree(big_repo_template, repo, symlinks=True)
    return repo


def _start_eval(repo: Path, phase: str | None) -> subprocess.Popen:
    argv = ["eval", "sentiment", "--evalset", "big", "--force"]
    cmd = ([sys.executable, "-c", INTERRUPT_PRELUDE, phase, *argv] if phase
           else [str(Path(sys.executable).parent / "git-model"), *argv])
    # SIGINT back to its default before exec, so that Python installs its handler even when this
    # test runs in a background job (where SIGINT is ignored and children inherit that)
    return subprocess.Popen(cmd, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _assert_interrupted(proc: subprocess.Popen, repo: Path, before: dict, stderr_so_far: str = "",
                        output: tuple[str, str] | None = None) -> None:
    out, err = output or proc.communicate(timeout=120)
    err = stderr_so_far + err
    assert proc.returncode == 130, (proc.returncode, out, err)
    assert err.strip().endswith("Interrupted: nothing was written."), err
    assert err.count("Interrupted") == 1, err
    assert "Exception ignored" not in err and "Traceback" not in err, err
    assert out == ""
    assert snapshot_tree(repo) == before          # the previous metrics and outputs, byte for byte
    assert not list(repo.rglob(".gitmodel-tmp-*"))
    assert status_porcelain(repo) == ""


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["import", "inputs", "load", "predict", "write", "rename"])
def test_ctrl_c_at_a_chosen_moment_leaves_the_previous_metrics(big_repo, phase):
    before = snapshot_tree(big_repo)
    for _ in range(3):
        proc = _start_eval(big_repo, phase)
        seen = ""
        while f"PHASE {phase}" not in seen:
            line = proc.stderr.readline()
            assert line, (phase, seen, proc.wait())
            seen += line
        proc.send_signal(signal.SIGINT)
        _assert_interrupted(proc, big_repo, before, seen)
        # the run is not finished when SIGINT lands: the message may not lie
        assert "Evaluated" not in seen


@pytest.mark.slow
def test_ctrl_c_at_many_moments_of_a_real_eval(big_repo):
    """SIGINT at moments spread over a real run, from start-up through the model load (~0.3 s in)
    to the middle of the evaluation: every time, the previous files stay and the message says so."""
    before = snapshot_tree(big_repo)
    started = time.perf_counter()
    proc = _start_eval(big_repo, None)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    full = time.perf_counter() - started
    git(big_repo, "checkout", "-q", "--", "metrics")
    assert snapshot_tree(big_repo) == before
    interrupted = 0
    for i in range(16):
        proc = _start_eval(big_repo, None)
        _wait_for_the_lock(big_repo, proc)
        time.sleep(i * 0.6 * full / 16)
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=120)
        if _finished_first(output, big_repo):
            continue
        _assert_interrupted(proc, big_repo, before, output=output)
        interrupted += 1
    # on a loaded machine a run can be faster than the one timed above; most signals land inside it
    assert interrupted >= 12, interrupted


@pytest.mark.slow
def test_ctrl_c_after_the_result_is_written_does_not_claim_nothing_was(big_repo):
    """Once both files are replaced there is nothing left to stop: the command reports its result."""
    proc = _start_eval(big_repo, "render")
    seen = ""
    while "PHASE render" not in seen:
        line = proc.stderr.readline()
        assert line, (seen, proc.wait())
        seen += line
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (out, seen + err)
    assert _finished_first((out, seen + err), big_repo)


def _finished_first(output: tuple[str, str], repo: Path) -> bool:
    """Whether the run wrote its result before SIGINT landed: then it says so, with a complete result
    (put back to the committed one for the next trial), and does not claim to be interrupted."""
    out, err = output
    if "Evaluated" not in out:
        return False
    assert out.startswith("Evaluated sentiment on big in "), (out, err)
    assert "Interrupted" not in err, err
    doc = json.loads((repo / "metrics/sentiment/big.json").read_text())
    resultfiles.validate_metrics(doc, "big.json")
    assert len((repo / "metrics/sentiment/big.outputs.jsonl").read_text().splitlines()) == doc["metrics"]["n"]
    git(repo, "checkout", "-q", "--", "metrics")
    return True


def _wait_for_the_lock(repo: Path, proc: subprocess.Popen) -> None:
    """Until git-model holds the repository lock: past the interpreter's start-up, whose Ctrl-C is
    Python's own (the moments before are covered one by one above), and about to load the model."""
    from gitmodel import locking, project

    lock = repo / project.STATE_DIR / locking.LOCK_NAME
    deadline = time.monotonic() + 60
    while not (lock.is_file() and lock.stat().st_size):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.002)


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_through_git(big_repo):
    """As a terminal sends it: SIGINT to the whole process group of `git model eval` (git and git-model)."""
    before = snapshot_tree(big_repo)
    for delay in (0.0, 0.1, 0.3, 0.6):
        proc = subprocess.Popen(["git", "model", "eval", "sentiment", "--evalset", "big", "--force"], cwd=big_repo,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        _wait_for_the_lock(big_repo, proc)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        if delay and _finished_first((out, err), big_repo):
            continue
        assert proc.returncode in (130, -signal.SIGINT), (proc.returncode, err)    # git dies of the signal
        assert err.strip() == "Interrupted: nothing was written.", err
        assert snapshot_tree(big_repo) == before
        assert not list(big_repo.rglob(".gitmodel-tmp-*"))


# ---------------------------------------------------------------- provenance: what produced a result


def test_a_llama_result_is_tied_and_records_its_timing_conditions(registry, runner):
    import os
    import socket

    assert runner.invoke(cli, EVAL).exit_code == 0
    doc = load(registry, "sentiment-v2")
    assert doc["verification"] == {"status": "tied",
                                   "detail": "llama.cpp loaded models/sentiment-v2.gguf after its md5 was checked"}
    conditions = doc["timing_conditions"]
    assert conditions["runner"] == "llama" and conditions["concurrency"] == 1 and conditions["n_threads"] == 1
    assert conditions["machine"].startswith(f"{socket.gethostname()} ({os.cpu_count()} CPUs")


@pytest.mark.slow
def test_status_agrees_with_dvc_status_after_an_eval_param_changes(registry, runner):
    def dvc_status() -> str:
        proc = subprocess.run(["dvc", "status", "eval@sentiment-v2-sentiment"], cwd=registry,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def ours() -> dict:
        result = runner.invoke(cli, ["status", "sentiment-v2", "--json"])
        assert result.exit_code == 0, result.output + result.stderr
        (entry,) = json.loads(result.output)["models"]
        return entry["metrics"][0]

    proc = subprocess.run(["dvc", "repro", "eval@sentiment-v2-sentiment"], cwd=registry, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "changed" not in dvc_status()
    assert ours()["stale"] is False
    params = registry / "params.yaml"
    params.write_text(params.read_text().replace("n_threads: 1 ", "n_threads: 2 "))
    assert "changed" in dvc_status()
    mine = ours()
    assert mine["stale"] is True
    assert mine["reason"] == "eval params changed since: eval.n_threads: recorded 1, now 2"
    # eval agrees: not a cache hit
    assert runner.invoke(cli, EVAL).output.startswith("Evaluated ")
    assert ours()["stale"] is False


def test_a_share_above_one_is_refused_when_read_naming_file_and_field(registry, runner):
    assert runner.invoke(cli, EVAL).exit_code == 0
    summary = registry / "metrics/sentiment-v2/sentiment.json"
    doc = json.loads(summary.read_text())
    doc["metrics"]["accuracy"] = 1.5
    summary.write_text(json.dumps(doc, indent=2))
    result = runner.invoke(cli, ["verify", "sentiment-v2"])
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: metrics/sentiment-v2/sentiment.json at workspace: field metrics.accuracy: "
                                    "1.5 is greater than the maximum of 1")


def test_a_share_above_one_is_refused_when_written(registry, runner, monkeypatch):
    real = metrics.compute

    def broken(*args, **kwargs):   # a metric computed wrong must not reach the file
        result = real(*args, **kwargs)
        result["labels"]["positive"]["recall"] = 1.25
        return result

    monkeypatch.setattr(metrics, "compute", broken)
    before = snapshot_tree(registry)
    result = runner.invoke(cli, EVAL)
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: metrics/sentiment-v2/sentiment.json: field "
                                    "metrics.labels.positive.recall: 1.25 is greater than the maximum of 1")
    assert snapshot_tree(registry) == before


@pytest.mark.parametrize("key, value, message", [
    ("accuracy", -0.1, "-0.1 is less than the minimum of 0"),
    ("label_psi", -1, "-1 is less than the minimum of 0"),
    ("n", -3, "-3 is less than the minimum of 0"),
])
def test_metric_bounds(key, value, message):
    doc = {"schema_version": 1, "model": {"name": "m", "path": None, "md5": None},
           "evalset": {"name": "e", "path": "evalsets/e.jsonl", "md5": "0" * 32}, "params": {},
           "runner": {"name": "llama", "version": "1"}, "metrics": {key: value}}
    from gitmodel.errors import InvalidMetrics

    with pytest.raises(InvalidMetrics) as info:
        resultfiles.validate_metrics(doc, "x.json")
    assert str(info.value) == f"x.json: field metrics.{key}: {message}"


def test_an_eval_set_with_a_lone_surrogate_tracked_behind_git_models_back_is_refused_at_eval(registry, runner):
    # `evalset add` refuses it; one tracked with plain `dvc add` must still not crash eval with UnicodeEncodeError
    (registry / "evalsets/raw.jsonl").write_text(
        '{"id": "ok", "input": "good food", "labels": ["positive", "negative"]}\n'
        '{"id": "bad", "input": "x \\ud800", "labels": ["positive", "negative"]}\n')
    subprocess.run(["dvc", "add", "evalsets/raw.jsonl"], cwd=registry, check=True, capture_output=True)
    dvc_yaml = registry / "dvc.yaml"                # and paired by hand
    paired = dvc_yaml.read_text().replace("      sentiment-v2-sentiment: {model: sentiment-v2, evalset: sentiment}\n",
                                          "      sentiment-v2-sentiment: {model: sentiment-v2, evalset: sentiment}\n"
                                          "      sentiment-v2-raw: {model: sentiment-v2, evalset: raw}\n")
    assert paired != dvc_yaml.read_text()
    dvc_yaml.write_text(paired)
    before = snapshot_tree(registry)
    result = runner.invoke(cli, ["eval", "sentiment-v2", "--evalset", "raw"])
    assert_refused(result, "evalsets/raw.jsonl:2: field 'input': a lone surrogate \\ud800 is not a character",
                   registry, before)
