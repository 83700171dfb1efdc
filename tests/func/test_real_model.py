"""The whole eval loop on a real pretrained model: Gemma 3 270M (Q4_K_M), a test dependency.

One repository per module (the checkpoint is 253 MB): the model tracked, three eval sets (a
classification through a prompt template, short answers cut at a stop sequence and scored with
`contains`, JSON extraction with a few-shot file scored with `json`), evaluated, released and
promoted. A second checkpoint quantized from it with llama.cpp's own quantize API then shows a
regression in `diff --examples` and `gate`. Tests that read the first checkpoint's results read them
at its release tag, so they hold whichever order they run in.
"""
from __future__ import annotations

import ctypes
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gitmodel import gguf
from tests.conftest import _isolate_env, git
from tests.func.realmodel import GEMMA3_CHAT_TEMPLATE, gemma_path

pytestmark = pytest.mark.slow

SENTIMENT = [("I loved this movie, it was wonderful.", "positive"), ("Terrible film, a waste of time.", "negative"),
             ("Great acting and a great story.", "positive"), ("The plot made no sense and I left early.", "negative"),
             ("A beautiful, moving film.", "positive"), ("The worst movie I have seen this year.", "negative")]
CAPITALS = [("France", "Paris", "eu"), ("Germany", "Berlin", "eu"), ("Japan", "Tokyo", "asia"),
            ("Spain", "Madrid", "eu"), ("Egypt", "Cairo", "africa"), ("China", "Beijing", "asia")]
PEOPLE = [("Carol", 29), ("Dan", 52), ("Eve", 33), ("Frank", 47)]

PARAMS = '''\
  evalsets:
    reviews:
      prompt: "Review: {input}\\nSentiment:"
    capitals:
      prompt: "Question: What is the capital of {input}?\\nAnswer:"
      stop: ["\\n"]
      scorer: contains
      slices: [region]
      min_slice: 2
    people:
      prompt: "Text: {input}\\nJSON:"
      fewshot: evalsets/people-shots.jsonl
      stop: ["\\n"]
      scorer: json
    chat:
      chat: templates/gemma3.jinja
      system: "Answer with one word."
      max_tokens: 16
'''


def jsonl(path: Path, rows) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def gm(repo: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git-model", *args], cwd=repo, capture_output=True, text=True)
    if ok:
        assert proc.returncode == 0, f"git model {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def gemma_repo(tmp_path_factory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        _isolate_env(mp, tmp_path_factory.mktemp("gemma-home"), identity=("Test", "t@example.com"))
        repo = tmp_path_factory.mktemp("gemma-repo") / "repo"
        repo.mkdir()
        git(repo, "init", "-q")
        gm(repo, "init")
        shutil.copy(gemma_path(tmp_path_factory.mktemp("gemma-file")), repo / "models/gemma.gguf")
        gm(repo, "add", "models/gemma.gguf")
        jsonl(repo / "evalsets/reviews.jsonl", [{"id": f"r{i}", "input": text, "labels": ["positive", "negative"],
                                                 "expected": label} for i, (text, label) in enumerate(SENTIMENT)])
        jsonl(repo / "evalsets/capitals.jsonl", [{"id": country.lower(), "input": country, "expected": city,
                                                  "region": region} for country, city, region in CAPITALS])
        jsonl(repo / "evalsets/people.jsonl", [{"id": name.lower(), "input": f"{name} is {age} years old.",
                                                "expected": json.dumps({"name": name, "age": age})}
                                               for name, age in PEOPLE])
        jsonl(repo / "evalsets/people-shots.jsonl", [
            {"id": "s1", "input": "Ada is 36 years old.", "expected": '{"name": "Ada", "age": 36}'},
            {"id": "s2", "input": "Bob is 41 years old.", "expected": '{"name": "Bob", "age": 41}'}])
        jsonl(repo / "evalsets/chat.jsonl", [{"id": "fr", "input": "What is the capital of France?"}])
        (repo / "templates").mkdir()
        (repo / "templates/gemma3.jinja").write_text(GEMMA3_CHAT_TEMPLATE)
        for name in ("reviews", "capitals", "people", "chat"):
            gm(repo, "evalset", "add", f"evalsets/{name}.jsonl")
        params = repo / "params.yaml"
        text = re.sub(r"^    (reviews|capitals|people|chat): \{\}\n", "", params.read_text(), flags=re.M)
        text = re.sub(r"^  evalsets:.*$", lambda _: PARAMS.rstrip("\n"), text, count=1, flags=re.M)
        params.write_text(text)
        for name in ("reviews", "capitals", "people", "chat"):
            gm(repo, "eval", "gemma", "--evalset", name)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "gemma q4 and its evals")
        gm(repo, "release", "gemma", "v1.0.0", "-m", "Gemma 3 270M Q4_K_M")
        gm(repo, "promote", "gemma", "v1.0.0", "--stage", "prod")
        yield repo


def at_release(repo: Path, path: str, rev: str = "gemma@v1.0.0") -> str:
    return git(repo, "show", f"{rev}:{path}")


def outputs_at(repo: Path, evalset: str) -> list[dict]:
    return [json.loads(l) for l in at_release(repo, f"metrics/gemma/{evalset}.outputs.jsonl").splitlines()]


def summary_at(repo: Path, evalset: str) -> dict:
    return json.loads(at_release(repo, f"metrics/gemma/{evalset}.json"))


def test_its_gguf_header_is_read_by_our_reader(tmp_path_factory):
    info = gguf.read_info(gemma_path(tmp_path_factory.mktemp("gemma-header")))
    assert info.to_meta() == {"architecture": "gemma3", "parameters": 268_098_176, "quantization": "Q4_K_M",
                              "context_length": 32768, "gguf_version": 3}
    from gitmodel.chattemplate import token_text

    assert [token_text(info.path, info, i) for i in (2, 1, 106)] == ["<bos>", "<eos>", "<end_of_turn>"]


def test_add_recorded_the_header_in_the_lineage(gemma_repo):
    text = at_release(gemma_repo, "models/gemma.gguf.dvc")
    assert "architecture: gemma3" in text and "quantization: Q4_K_M" in text


def test_classification_through_a_prompt_template(gemma_repo):
    doc = summary_at(gemma_repo, "reviews")
    assert doc["params"]["prompt"] == "Review: {input}\nSentiment:"
    assert doc["metrics"]["accuracy"] >= 0.66
    assert {o["label"] for o in outputs_at(gemma_repo, "reviews")} == {"positive", "negative"}


def test_generation_stops_at_the_stop_sequence_and_is_scored_with_contains(gemma_repo):
    doc, lines = summary_at(gemma_repo, "capitals"), outputs_at(gemma_repo, "capitals")
    # without the stop the model runs on to max_tokens ("Paris\nQuestion: ...") and exact match scores 0
    assert all("\n" not in o["output"] for o in lines)
    assert max(o["output_tokens"] for o in lines) < 64
    assert doc["scoring"] == {"scorer": "contains", "by_scorer": {"contains": 6}}
    assert doc["metrics"]["accuracy"] >= 0.8
    assert "Paris" in next(o["output"] for o in lines if o["id"] == "france")
    assert doc["metrics"]["slices"]["region"]["eu"]["n"] == 3 and "bias" in doc["metrics"]


def test_json_extraction_with_a_fewshot_file_is_scored_with_json(gemma_repo):
    doc, lines = summary_at(gemma_repo, "people"), outputs_at(gemma_repo, "people")
    assert doc["params"]["fewshot"] == "evalsets/people-shots.jsonl" and "fewshot_md5" in doc["prompting"]
    assert doc["scoring"]["by_scorer"] == {"json": 4}
    assert [json.loads(o["output"]) for o in lines] == [{"name": n, "age": a} for n, a in PEOPLE]
    assert doc["metrics"]["accuracy"] == 1.0


def test_a_chat_template_renders_as_llama_cpp_python_renders_it(gemma_repo):
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from gitmodel.chattemplate import ChatTemplate

    messages = [{"role": "system", "content": "Answer with one word."},
                {"role": "user", "content": "What is the capital of France?"}]
    ours = ChatTemplate(GEMMA3_CHAT_TEMPLATE, "templates/gemma3.jinja", "<bos>", "<eos>").render(messages)
    theirs = Jinja2ChatFormatter(GEMMA3_CHAT_TEMPLATE, eos_token="<eos>", bos_token="<bos>")(messages=messages).prompt
    assert ours == theirs == ("<bos><start_of_turn>user\nAnswer with one word.\n\nWhat is the capital of France?"
                              "<end_of_turn>\n<start_of_turn>model\n")
    doc = summary_at(gemma_repo, "chat")
    assert doc["params"]["chat"] == "templates/gemma3.jinja"
    import hashlib

    assert doc["prompting"]["chat_template_md5"] == hashlib.md5(GEMMA3_CHAT_TEMPLATE.encode()).hexdigest()


def test_the_chat_eval_generates_what_llama_cpp_pythons_chat_completion_generates(gemma_repo):
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    handler = Jinja2ChatFormatter(GEMMA3_CHAT_TEMPLATE, eos_token="<eos>", bos_token="<bos>",
                                  stop_token_ids=[1, 106]).to_chat_handler()
    llm = Llama(str(gemma_repo / ".dvc/cache" / "files/md5" / _md5_path(gemma_repo)), n_ctx=2048, n_threads=1,
                verbose=False, chat_handler=handler)
    try:
        answer = llm.create_chat_completion(messages=[{"role": "system", "content": "Answer with one word."},
                                                      {"role": "user", "content": "What is the capital of France?"}],
                                            temperature=0, max_tokens=16)
    finally:
        llm.close()
    [line] = outputs_at(gemma_repo, "chat")
    assert line["output"] == answer["choices"][0]["message"]["content"]
    assert line["output_tokens"] == answer["usage"]["completion_tokens"]


def _md5_path(repo: Path) -> str:
    md5 = next(l.split(":")[1].strip() for l in at_release(repo, "models/gemma.gguf.dvc").splitlines()
               if l.strip().startswith("- md5:"))
    return f"{md5[:2]}/{md5[2:]}"


def test_verify_reproduces_every_eval_byte_for_byte(gemma_repo):
    for evalset in ("reviews", "capitals", "people", "chat"):
        proc = gm(gemma_repo, "verify", "gemma", "--evalset", evalset, "--rev", "gemma@v1.0.0")
        assert "identical, byte for byte" in proc.stdout


def test_a_quantized_checkpoint_regresses_in_diff_and_gate(gemma_repo):
    import llama_cpp

    q3 = gemma_repo.parent / "gemma-q3.gguf"
    settings = llama_cpp.llama_model_quantize_default_params()
    settings.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q3_K_S
    settings.allow_requantize = True
    settings.nthread = 2
    assert llama_cpp.llama_model_quantize(str(gemma_repo / "models/gemma.gguf").encode(), str(q3).encode(),
                                          ctypes.byref(settings)) == 0
    assert gguf.read_info(q3).quantization == "Q3_K_S"
    shutil.copy(q3, gemma_repo / "models/gemma.gguf")
    gm(gemma_repo, "add", "models/gemma.gguf")
    for name in ("reviews", "capitals", "people", "chat"):
        gm(gemma_repo, "eval", "gemma", "--evalset", name)
    git(gemma_repo, "add", "-A")
    git(gemma_repo, "commit", "-q", "-m", "gemma q3_k_s")

    diff = gm(gemma_repo, "diff", "gemma#prod", "HEAD", "--examples")
    assert "metrics/gemma/capitals.json" in diff.stdout
    assert "correct -> wrong" in diff.stdout
    gate = gm(gemma_repo, "gate", "gemma", "--candidate", "HEAD", ok=False)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "FAIL" in gate.stdout and "capitals" in gate.stdout
    proc = gm(gemma_repo, "verify", "gemma", "--evalset", "capitals")
    assert "identical, byte for byte" in proc.stdout


def test_batched_generation_is_byte_identical_run_to_run_and_stops_alike(gemma_repo):
    from gitmodel import resultfiles
    from gitmodel.runners.base import Example, RunSettings
    from gitmodel.runners.llama import LlamaRunner

    model = gemma_repo / ".dvc/cache/files/md5" / _md5_path(gemma_repo)   # the Q4_K_M checkpoint
    examples = [Example(id=c.lower(), input=c, prompt=f"Question: What is the capital of {c}?\nAnswer:")
                for c, _, _ in CAPITALS] + [Example(id="long", input="", prompt="Once upon a time")]

    def run(parallel: int) -> tuple[bytes, list]:
        with LlamaRunner(model, RunSettings(n_ctx=512, max_tokens=24, stop=("\n",), parallel=parallel)) as runner:
            predictions = runner.predict(examples)
        return resultfiles.render_outputs(examples, predictions), predictions

    first, predictions = run(4)
    assert run(4)[0] == first
    assert all("\n" not in p.output for p in predictions)
    assert any(p.output_tokens == 24 for p in predictions)             # the story runs to its budget
    assert "Paris" in predictions[0].output
    sequential = run(1)[1]
    # another batch shape may move the last bits of the floats, not the answers of this eval set
    assert [p.output.strip().split()[-1:] for p in predictions[:len(CAPITALS)]] == \
        [p.output.strip().split()[-1:] for p in sequential[:len(CAPITALS)]]


@pytest.fixture(scope="module")
def gemma_chat_server(gemma_repo, tmp_path_factory):
    """``llama_cpp.server`` over the Gemma checkpoint with its built-in ``gemma`` chat format: a served chat
    model as teams run one. That format renders a user turn as Gemma 3's template does (no system turn)."""
    from tests.func.test_openai_runner import LlamaServer

    server = LlamaServer(gemma_repo / ".dvc/cache/files/md5" / _md5_path(gemma_repo),
                         tmp_path_factory.mktemp("gemma-server") / "server.log", extra=("--chat_format", "gemma"))
    try:
        yield server.start().url
    finally:
        server.stop()


QUESTIONS = ("What is the capital of France?", "Name a primary colour.", "What is 2 + 2?")


def test_the_openai_chat_runner_generates_over_llama_cpp_server_what_the_chat_eval_generates(
        gemma_repo, gemma_chat_server, monkeypatch):
    from gitmodel.chattemplate import ChatTemplate
    from gitmodel.runners.base import Example, RunSettings
    from gitmodel.runners.llama import LlamaRunner
    from gitmodel.runners.openai import OpenAIRunner

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    template = ChatTemplate(GEMMA3_CHAT_TEMPLATE, "templates/gemma3.jinja", "<bos>", "<eos>")
    chats = [({"role": "user", "content": q},) for q in QUESTIONS]
    served = OpenAIRunner(gemma_chat_server, RunSettings(max_tokens=16), backoff=0.0).predict(
        [Example(id=f"q{i}", input=q, messages=m) for i, (q, m) in enumerate(zip(QUESTIONS, chats))])
    model = gemma_repo / ".dvc/cache/files/md5" / _md5_path(gemma_repo)
    with LlamaRunner(model, RunSettings(max_tokens=16, n_ctx=512, special=True)) as runner:
        local = runner.predict([Example(id=f"q{i}", input=q, prompt=template.render(list(m)))
                                for i, (q, m) in enumerate(zip(QUESTIONS, chats))])
    assert [(p.output, p.output_tokens) for p in served] == [(p.output, p.output_tokens) for p in local]
    assert all(p.output for p in served)


def test_labels_are_scored_from_llama_cpp_servers_chat_logprobs_as_the_chat_eval_scores_them(
        gemma_repo, gemma_chat_server, monkeypatch):
    """The server's chat answer lists the first token's top log-probabilities: the runner reads each label's,
    and they are the log-probabilities the in-process runner computes after the same rendered turn."""
    import urllib.request

    from gitmodel.chattemplate import ChatTemplate
    from gitmodel.runners.base import Example, RunSettings
    from gitmodel.runners.llama import LlamaRunner
    from gitmodel.runners.openai import OpenAIRunner

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    turn = ({"role": "user", "content": "Review: I loved it. Is it positive or negative? Answer in one word."},)
    request = urllib.request.Request(f"{gemma_chat_server}/chat/completions", json.dumps(
        {"messages": list(turn), "temperature": 0, "max_tokens": 1, "logprobs": True, "top_logprobs": 20}).encode(),
        {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        listed = json.load(response)["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    # two words the server lists, in the opposite order of its ranking: the runner must pick by score
    labels = tuple(item["token"] for item in listed if item["token"].isalpha())[:2][::-1]
    assert len(labels) == 2
    example = Example(id="r", input="I loved it", labels=labels, messages=turn)
    [served] = OpenAIRunner(gemma_chat_server, RunSettings(label_prefix=""), backoff=0.0, scoring="top_logprobs",
                            top_logprobs=20).predict([example])
    assert served.label == labels[1]
    assert served.scores == pytest.approx({t["token"]: t["logprob"] for t in listed if t["token"] in labels})
    template = ChatTemplate(GEMMA3_CHAT_TEMPLATE, "templates/gemma3.jinja", "<bos>", "<eos>")
    model = gemma_repo / ".dvc/cache/files/md5" / _md5_path(gemma_repo)
    with LlamaRunner(model, RunSettings(n_ctx=512, special=True, label_prefix="")) as runner:
        [local] = runner.predict([Example(id="r", input="I loved it", labels=labels,
                                          prompt=template.render(list(turn)))])
    assert local.label == served.label
    assert local.scores == pytest.approx(served.scores, abs=1e-3)
