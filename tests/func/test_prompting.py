"""Prompts, stop sequences, scorers, chat templates and slices in real evals on the demo checkpoints
(real git, DVC and llama.cpp), and every bad setting refused with nothing written."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gitmodel.cli import cli
from tests.conftest import git, snapshot_tree

pytestmark = pytest.mark.slow


def set_eval(repo: Path, text: str) -> None:
    """Set eval keys in params.yaml: each top-level line of ``text`` (``  key: value``, with any indented
    lines after it) replaces the line of that key that `git model init` wrote."""
    params = repo / "params.yaml"
    body = params.read_text()
    for block in re.split(r"\n(?=  \S)", text.rstrip("\n")):
        key = block.split(":")[0].strip()
        for name in re.findall(r"^    (\S+):", block, flags=re.M):   # `evalset add` wrote `name: {}`
            body = re.sub(rf"^    {re.escape(name)}: {{}}\n", "", body, flags=re.M)
        body, n = re.subn(rf"^  {key}:.*$", lambda _: block, body, count=1, flags=re.M)
        assert n == 1, key
    params.write_text(body)


def outputs(repo: Path, model: str, evalset: str) -> list[dict]:
    return [json.loads(l) for l in (repo / f"metrics/{model}/{evalset}.outputs.jsonl").read_text().splitlines()]


def doc(repo: Path, model: str, evalset: str) -> dict:
    return json.loads((repo / f"metrics/{model}/{evalset}.json").read_text())


@pytest.fixture
def answers(registry, demo_dir, runner):
    """The demo registry with the generation eval set sentiment-answers tracked and committed."""
    shutil.copy(demo_dir / "sentiment-answers.jsonl", registry / "evalsets/sentiment-answers.jsonl")
    result = runner.invoke(cli, ["evalset", "add", "evalsets/sentiment-answers.jsonl"])
    assert result.exit_code == 0, result.output + result.stderr
    git(registry, "add", "-A")
    git(registry, "commit", "-q", "-m", "track sentiment-answers")
    return registry


def test_generation_evalset_scored_with_contains_per_eval_set(answers, runner):
    set_eval(answers, "  evalsets:\n    sentiment-answers:\n      scorer: contains\n")
    result = runner.invoke(cli, ["eval", "sentiment-v2", "--evalset", "sentiment-answers"])
    assert result.exit_code == 0, result.output + result.stderr
    d = doc(answers, "sentiment-v2", "sentiment-answers")
    assert d["params"]["scorer"] == "contains" and d["scoring"] == {"scorer": "contains", "by_scorer": {"contains": 400}}
    lines = outputs(answers, "sentiment-v2", "sentiment-answers")
    assert {l["output"] for l in lines} <= {" positive", " negative", ""}
    # the generation answers what the classifier scores best, so the two accuracies agree
    assert runner.invoke(cli, ["eval", "sentiment-v2", "--evalset", "sentiment"]).exit_code == 0
    assert d["metrics"]["accuracy"] == pytest.approx(doc(answers, "sentiment-v2", "sentiment")["metrics"]["accuracy"],
                                                     abs=0.01)
    # the classification eval set keeps exact match: the override is sentiment-answers' own
    assert doc(answers, "sentiment-v2", "sentiment")["params"]["scorer"] == "exact"


def test_stop_sequence_ends_the_generation_in_llama_cpp(answers, runner):
    set_eval(answers, '  evalsets:\n    sentiment-answers:\n      stop: ["itive", "ative"]\n      scorer: regex\n')
    # regex on "pos|neg": expected is the label; rewrite the eval set's expectations as patterns
    path = answers / "evalsets/sentiment-answers.jsonl"
    rows = [json.loads(l) for l in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(dict(r, expected="^ " + r["expected"][:3] + "$")) + "\n" for r in rows))
    assert runner.invoke(cli, ["evalset", "add", "evalsets/sentiment-answers.jsonl"]).exit_code == 0
    result = runner.invoke(cli, ["eval", "sentiment-v2", "--evalset", "sentiment-answers"])
    assert result.exit_code == 0, result.output + result.stderr
    lines = outputs(answers, "sentiment-v2", "sentiment-answers")
    assert {l["output"] for l in lines} <= {" pos", " neg", ""}
    assert all(l["output_tokens"] <= 1 for l in lines)   # stopped at the label's token, not at max_tokens
    assert doc(answers, "sentiment-v2", "sentiment-answers")["metrics"]["accuracy"] > 0.85


def test_prompt_template_reaches_the_model_and_is_recorded(registry, runner):
    assert runner.invoke(cli, ["eval", "sentiment-v2", "--evalset", "sentiment"]).exit_code == 0
    plain = outputs(registry, "sentiment-v2", "sentiment")
    set_eval(registry, '  prompt: "{input} . {category} ."\n')
    result = runner.invoke(cli, ["eval", "sentiment-v2", "--evalset", "sentiment"])
    assert result.exit_code == 0 and "Evaluated" in result.output, result.stderr   # the prompt changed
    templated = outputs(registry, "sentiment-v2", "sentiment")
    assert [l["scores"] for l in templated] != [l["scores"] for l in plain]
    d = doc(registry, "sentiment-v2", "sentiment")
    assert d["params"]["prompt"] == "{input} . {category} ." and re.fullmatch(r"[0-9a-f]{32}", d["params"]["prompt_md5"])
    assert set(d["prompting"]) == {"template_md5"}
    # the stored result is reproduced byte for byte from the recorded params
    git(registry, "add", "-A")
    git(registry, "commit", "-q", "-m", "eval with a prompt")
    verify = runner.invoke(cli, ["verify", "sentiment-v2", "--evalset", "sentiment"])
    assert verify.exit_code == 0, verify.output + verify.stderr
    assert "all 400 outputs identical" in verify.output


def test_a_fewshot_file_changes_what_the_model_sees_and_its_md5_is_recorded(registry, runner):
    (registry / "shots.jsonl").write_text('{"id": "s1", "input": "the food was great", "expected": "positive"}\n')
    set_eval(registry, '  fewshot: shots.jsonl\n')
    result = runner.invoke(cli, ["eval", "sentiment-v2", "--evalset", "sentiment"])
    assert result.exit_code == 0, result.output + result.stderr
    first = doc(registry, "sentiment-v2", "sentiment")["prompting"]
    assert set(first) == {"template_md5", "fewshot_md5"}
    # the same params with another few-shot file is another result: not reused
    (registry / "shots.jsonl").write_text('{"id": "s1", "input": "the food was awful", "expected": "negative"}\n')
    result = runner.invoke(cli, ["eval", "sentiment-v2", "--evalset", "sentiment"])
    assert "Evaluated" in result.output
    assert doc(registry, "sentiment-v2", "sentiment")["prompting"]["fewshot_md5"] != first["fewshot_md5"]


@pytest.mark.parametrize("setting, message", [
    ('  prompt: "Review: {review}"\n', "has no field 'review' for the placeholder {review}"),
    ('  prompt: "Review: {input"\n', "params.yaml: eval.prompt: expected '}' before end of string"),
    ('  chat: auto\n  system: "Be kind."\n', "eval.chat is auto but models/sentiment-v2.gguf has no chat template "
                                           "(tokenizer.chat_template), so eval.system cannot be used"),
    ('  stop: "\\n"\n', "eval.stop must be a list of non-empty strings"),
    ('  scorer: json_schema\n  json_schema: missing.schema.json\n', None),
    ("  chat: evil.jinja\n", "evil.jinja: the chat template tried to reach outside its sandbox"),
    ("  chat: raising.jinja\n", "raising.jinja: the chat template failed to render: TemplateError: no system turn"),
])
def test_bad_settings_fail_before_anything_runs_and_write_nothing(registry, runner, setting, message):
    if message is None:   # a scorer matters for generations only: give the eval set one
        path = registry / "evalsets/sentiment.jsonl"
        path.write_text(path.read_text() + '{"id": "g1", "input": "the food was"}\n')
        assert runner.invoke(cli, ["evalset", "add", "evalsets/sentiment.jsonl"]).exit_code == 0
        message = "the schema file"
    (registry / "evil.jinja").write_text("{{ messages.__class__.__mro__ }}")
    (registry / "raising.jinja").write_text("{{ raise_exception('no system turn') }}")
    set_eval(registry, setting)
    before = snapshot_tree(registry)
    result = runner.invoke(cli, ["eval", "sentiment-v2", "--evalset", "sentiment"])
    assert result.exit_code == 3, result.output + result.stderr
    assert message in result.stderr and result.stderr.startswith("Error: ")
    assert snapshot_tree(registry) == before


def test_chat_auto_without_a_template_and_without_system_evaluates_the_prompt_as_is(registry, runner):
    assert runner.invoke(cli, ["eval", "sentiment-v2", "--evalset", "sentiment"]).exit_code == 0
    plain = (registry / "metrics/sentiment-v2/sentiment.outputs.jsonl").read_bytes()
    set_eval(registry, "  chat: auto\n")
    result = runner.invoke(cli, ["eval", "sentiment-v2", "--evalset", "sentiment"])
    assert result.exit_code == 0
    assert (registry / "metrics/sentiment-v2/sentiment.outputs.jsonl").read_bytes() == plain


def test_chat_template_inside_the_gguf_is_rendered_and_recorded(registry, runner, tmp_path):
    # A copy of v2 carrying a chat template, written by the gguf package's own metadata tool.
    template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }} | {% endfor %}assistant:"
    model = registry / "models/sentiment-v2.gguf"
    edited = tmp_path / "chat.gguf"
    subprocess.run([sys.executable, "-m", "gguf.scripts.gguf_new_metadata", str(model), str(edited),
                    "--chat-template", template, "--force"], check=True, capture_output=True)
    shutil.copy(edited, model)
    assert runner.invoke(cli, ["add", "models/sentiment-v2.gguf"]).exit_code == 0
    set_eval(registry, '  chat: auto\n  system: "the food was great"\n')
    result = runner.invoke(cli, ["eval", "sentiment-v2", "--evalset", "sentiment"])
    assert result.exit_code == 0, result.output + result.stderr
    import hashlib

    d = doc(registry, "sentiment-v2", "sentiment")
    assert d["prompting"]["chat_template_md5"] == hashlib.md5(template.encode()).hexdigest()
    # the system message's positive words sit in every prompt: more positive answers than without it
    assert d["metrics"]["label_distribution"]["positive"] > 0.6


def test_slices_and_bias_gaps_on_the_demo(registry, runner):
    set_eval(registry, "  slices: [category]\n  min_slice: 20\n")
    for model in ("sentiment-v2", "sentiment-v3"):
        assert runner.invoke(cli, ["eval", model, "--evalset", "sentiment"]).exit_code == 0
    v2, v3 = (doc(registry, m, "sentiment")["metrics"] for m in ("sentiment-v2", "sentiment-v3"))
    for m in (v2, v3):
        assert set(m["slices"]["category"]) == set(m["accuracy_by_category"])
        for value, entry in m["slices"]["category"].items():
            assert entry["accuracy"] == m["accuracy_by_category"][value]
        assert set(m["bias"]["category"]) == {"accuracy_gap", "positive", "negative"}
    # v3's bias toward positive: wrongly flagged positives, unevenly across categories
    assert max(e["labels"]["positive"]["fpr"] for e in v3["slices"]["category"].values()) > \
        max(e["labels"]["positive"]["fpr"] for e in v2["slices"]["category"].values())


def test_the_python_runner_sees_the_rendered_prompt_and_stops_alike(answers, runner):
    (answers / "echo_model.py").write_text("def predict(inputs):\n    return [text + '\\nmore' for text in inputs]\n")
    set_eval(answers, '  prompt: "Q: {input} ({category})"\n  stop: ["\\n"]\n')
    result = runner.invoke(cli, ["eval", "echo", "--evalset", "sentiment-answers", "--runner", "python",
                                 "--entry", "echo_model:predict"])
    assert result.exit_code == 0, result.output + result.stderr
    rows = [json.loads(l) for l in (answers / "evalsets/sentiment-answers.jsonl").read_text().splitlines()]
    got = outputs(answers, "echo", "sentiment-answers")
    assert [l["output"] for l in got] == [f"Q: {r['input']} ({r['category']})" for r in rows]


def test_parallel_generation_is_recorded_and_byte_identical_run_to_run(answers, runner):
    set_eval(answers, "  evalsets:\n    sentiment-answers:\n      scorer: contains\n      parallel: 4\n")
    args = ["eval", "sentiment-v2", "--evalset", "sentiment-answers"]
    assert runner.invoke(cli, args).exit_code == 0
    first = (answers / "metrics/sentiment-v2/sentiment-answers.outputs.jsonl").read_bytes()
    assert doc(answers, "sentiment-v2", "sentiment-answers")["params"]["parallel"] == 4
    assert runner.invoke(cli, [*args, "--force"]).exit_code == 0
    assert (answers / "metrics/sentiment-v2/sentiment-answers.outputs.jsonl").read_bytes() == first
    # another batch shape is another result: not up to date
    params = answers / "params.yaml"
    params.write_text(params.read_text().replace("      parallel: 4\n", "      parallel: 2\n"))
    assert "Evaluated" in runner.invoke(cli, args).output


def test_n_threads_zero_uses_every_core_and_changes_no_output(registry, runner):
    assert runner.invoke(cli, ["eval", "sentiment-v2", "--evalset", "sentiment"]).exit_code == 0
    one = (registry / "metrics/sentiment-v2/sentiment.outputs.jsonl").read_bytes()
    set_eval(registry, "  n_threads: 0\n")
    assert runner.invoke(cli, ["eval", "sentiment-v2", "--evalset", "sentiment"]).exit_code == 0
    assert (registry / "metrics/sentiment-v2/sentiment.outputs.jsonl").read_bytes() == one
    d = doc(registry, "sentiment-v2", "sentiment")
    from gitmodel.runners.base import available_cores

    assert d["params"]["n_threads"] == 0 and d["timing_conditions"]["n_threads"] == available_cores()


def test_verify_says_when_it_reproduced_on_another_build(registry, runner):
    assert runner.invoke(cli, ["eval", "sentiment-v2", "--evalset", "sentiment"]).exit_code == 0
    path = registry / "metrics/sentiment-v2/sentiment.json"
    d = json.loads(path.read_text())
    d["runner"]["llama_cpp_version"] = "0.0.1 (older build)"
    path.write_text(json.dumps(d, indent=2) + "\n")
    git(registry, "add", "-A")
    git(registry, "commit", "-q", "-m", "a result of an older build")
    result = runner.invoke(cli, ["verify", "sentiment-v2", "--evalset", "sentiment"])
    assert result.exit_code == 0, result.output
    assert re.search(r"  reproduced on another build: llama.cpp \S.* \(stored with 0.0.1 \(older build\)\): "
                     r"no output differs", result.output)


def test_a_slice_field_missing_on_examples_is_counted_and_said(registry, runner):
    set_eval(registry, "  slices: [region]\n")
    result = runner.invoke(cli, ["eval", "sentiment-v2", "--evalset", "sentiment"])
    assert result.exit_code == 0
    assert "Warning: slice field 'region' is missing on 400 of 400 examples ('r0001', 'r0002'" in result.stderr
    assert doc(registry, "sentiment-v2", "sentiment")["metrics"]["slices"]["region"]["(missing)"]["n"] == 400
