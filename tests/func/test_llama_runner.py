"""The llama runner on the demo checkpoints, checked against plain llama-cpp-python."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gitmodel.errors import RunnerError
from gitmodel.runners.base import Example, RunSettings
from gitmodel.runners.llama import LlamaRunner


def examples_of(path, limit=None) -> list[Example]:
    rows = [json.loads(line) for line in path.read_text().splitlines()][:limit]
    return [Example(id=r["id"], input=r["input"], expected=r["expected"], labels=tuple(r["labels"]),
                    category=r["category"], line=i) for i, r in enumerate(rows, start=1)]


@pytest.fixture(scope="module")
def v2(demo_dir):
    runner = LlamaRunner(demo_dir / "sentiment-v2.gguf", RunSettings())
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def reference(demo_dir):
    """Plain llama-cpp-python with logits for every position: an independent way to score."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(demo_dir / "sentiment-v2.gguf"), n_ctx=512, n_threads=1,
                          n_threads_batch=1, seed=0, logits_all=True, verbose=False)
    yield llm
    llm.close()


def log_softmax(logits: np.ndarray) -> np.ndarray:
    wide = logits.astype(np.float64)
    return wide - (wide.max() + np.log(np.exp(wide - wide.max()).sum()))


def reference_logprob(llm, context: str, continuation: str) -> float:
    """log P(tokens of context+continuation after those of context), every position from one pass."""
    prompt = llm.tokenize(context.encode())
    full = llm.tokenize((context + continuation).encode())
    k = next((i for i, (a, b) in enumerate(zip(prompt, full)) if a != b), min(len(prompt), len(full)))
    llm.reset()
    llm.eval(full)
    return sum(float(log_softmax(llm.scores[j - 1])[full[j]]) for j in range(k, len(full)))


def test_classification_matches_plain_llama_cpp(v2, reference, demo_dir):
    examples = examples_of(demo_dir / "sentiment.jsonl", limit=60)
    predictions = v2.predict(examples)
    for example, prediction in zip(examples, predictions):
        expected = {label: reference_logprob(reference, example.input, " " + label) for label in example.labels}
        assert prediction.scores == pytest.approx(expected, abs=1e-4)
        assert prediction.label == max(expected, key=expected.get)
        pos, neg = expected["positive"], expected["negative"]
        best = max(pos, neg)
        assert prediction.confidence == pytest.approx(
            math.exp(expected[prediction.label] - best) / (math.exp(pos - best) + math.exp(neg - best)), abs=1e-4)
        assert prediction.output == prediction.label and prediction.output_tokens == 1
        assert prediction.latency_ms > 0


def test_two_runs_give_identical_predictions(demo_dir):
    examples = examples_of(demo_dir / "sentiment.jsonl", limit=100)
    runs = []
    for _ in range(2):
        with LlamaRunner(demo_dir / "sentiment-v3.gguf", RunSettings()) as runner:
            runs.append([(p.label, p.confidence, p.scores, p.tie) for p in runner.predict(examples)])
            runs.append([(p.label, p.confidence, p.scores, p.tie) for p in runner.predict(examples)])
    assert runs[0] == runs[1] == runs[2] == runs[3]


def test_ties_are_reported(demo_dir):
    # v1 never learned "excellent": the labels score exactly equal.
    with LlamaRunner(demo_dir / "sentiment-v1.gguf", RunSettings()) as runner:
        (tied, clear) = runner.predict([
            Example(id="t", input="the food was excellent", labels=("negative", "positive")),
            Example(id="c", input="the food was great", labels=("negative", "positive")),
        ])
    assert tied.tie and tied.label == "negative" and tied.confidence == pytest.approx(0.5)
    assert not clear.tie and clear.label == "positive"


def test_multi_token_labels(v2, reference):
    # "superb" is not in the demo vocabulary (it splits into pieces and bytes);
    # "very good" and "not good at all" are several whole-word tokens.
    example = Example(id="m", input="the food was great", labels=("positive", "superb", "very good", "not good at all"))
    (prediction,) = v2.predict([example])
    expected = {label: reference_logprob(reference, example.input, " " + label) for label in example.labels}
    assert prediction.scores == pytest.approx(expected, abs=1e-4)
    assert prediction.label == "positive"


def test_labels_that_begin_alike_are_scored_after_the_input(v2, reference):
    # Both labels start with "▁very": the score still covers it, log P(label | input).
    example = Example(id="s", input="the service was rude", labels=("very positive", "very negative"))
    (prediction,) = v2.predict([example])
    expected = {label: reference_logprob(reference, example.input, " " + label) for label in example.labels}
    assert prediction.scores == pytest.approx(expected, abs=1e-4)
    assert prediction.label == "very negative" and prediction.output_tokens == 2


def test_label_that_retokenizes_the_end_of_the_input(demo_dir, reference):
    # With no space before the label, "go" + "od" becomes the single token "▁good":
    # the input's last token is re-split, and scoring starts where the two agree.
    with LlamaRunner(demo_dir / "sentiment-v2.gguf", RunSettings(label_prefix="")) as runner:
        (prediction,) = runner.predict([Example(id="b", input="the food was go", labels=("od", "ne"))])
    for label in ("od", "ne"):
        assert prediction.scores[label] == pytest.approx(
            reference_logprob(reference, "the food was", " go" + label), abs=1e-4)


def test_generation_is_greedy_and_deterministic(v2):
    examples = [Example(id="g1", input="the food was great"), Example(id="g2", input="the service was rude"),
                Example(id="g3", input="the table was by the window")]
    first = v2.predict(examples)
    second = v2.predict(examples)
    assert [(p.output, p.output_tokens) for p in first] == [(" positive", 1), (" negative", 1), ("", 0)]
    assert [(p.output, p.output_tokens) for p in first] == [(p.output, p.output_tokens) for p in second]
    assert all(p.label is None and p.confidence is None for p in first)


def test_sampled_generation_honours_seed_and_max_tokens(demo_dir):
    # No sentiment at all: a near-uniform next-token distribution, so a sampler runs to max_tokens.
    example = Example(id="s", input="the table was by the window")
    outputs = []
    for _ in range(2):
        with LlamaRunner(demo_dir / "sentiment-v2.gguf", RunSettings(temperature=1.0, seed=7, max_tokens=5)) as r:
            outputs.append([(p.output, p.output_tokens) for p in r.predict([example, example])])
    assert outputs[0] == outputs[1]
    assert outputs[0][0] == outputs[0][1]
    assert outputs[0][0][1] == 5


def test_progress_is_called_once_per_example(v2, demo_dir):
    calls = []
    examples = examples_of(demo_dir / "sentiment.jsonl", limit=7)
    v2.predict(examples, progress=calls.append)
    assert calls == [1] * 7


def test_info_names_the_versions(v2):
    import llama_cpp

    info = v2.info()
    assert info["name"] == "llama" and info["version"] == llama_cpp.__version__
    assert info["llama_cpp_version"]


def test_missing_model(tmp_path):
    with pytest.raises(RunnerError, match="model file not found"):
        LlamaRunner(tmp_path / "nope.gguf", RunSettings())


def test_model_llama_cpp_cannot_load_is_an_error_and_prints_nothing(tmp_path, demo_dir, capfd):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes((demo_dir / "sentiment-v2.gguf").read_bytes()[:100_000])
    with pytest.raises(RunnerError, match="llama.cpp could not load the model"):
        LlamaRunner(broken, RunSettings())
    assert capfd.readouterr() == ("", "")


def test_prompt_longer_than_the_context_names_the_example(demo_dir):
    with LlamaRunner(demo_dir / "sentiment-v2.gguf", RunSettings(n_ctx=32)) as runner:
        long = Example(id="r0042", input=" ".join(["good"] * 40), labels=("positive", "negative"), line=42)
        with pytest.raises(RunnerError, match=r"example 'r0042' \(line 42\): 4\d tokens do not fit the context of 32"):
            runner.predict([long])


def test_runs_print_nothing(demo_dir, capfd):
    with LlamaRunner(demo_dir / "sentiment-v1.gguf", RunSettings()) as runner:
        runner.predict(examples_of(demo_dir / "sentiment.jsonl", limit=20) + [Example(id="g", input="the food")])
    assert capfd.readouterr() == ("", "")


def test_ctrl_c_during_predict_stops_after_the_current_example(v2, demo_dir):
    """SIGINT while llama.cpp works is held back, then raised between two examples: never lost."""
    import os
    import signal

    examples = examples_of(demo_dir / "sentiment.jsonl", 10)
    done = []

    def progress(n):
        done.append(n)
        if len(done) == 3:
            os.kill(os.getpid(), signal.SIGINT)     # arrives while the 4th example is not started yet

    with pytest.raises(KeyboardInterrupt):
        v2.predict(examples, progress)
    assert len(done) == 3            # the 4th example ran to its end, then the interrupt stopped the run
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert len(v2.predict(examples[:2])) == 2     # and the runner is still usable


def test_a_long_input_within_n_ctx_is_named_in_a_warning(demo_dir):
    from gitmodel import gguf

    trained = gguf.read_info(demo_dir / "sentiment-v2.gguf").context_length
    long = Example(id="long", input=" ".join(["good"] * (trained + 50)), labels=("positive", "negative"), line=9)
    short = Example(id="short", input="good food", labels=("positive", "negative"), line=1)
    with LlamaRunner(demo_dir / "sentiment-v2.gguf", RunSettings(n_ctx=4 * trained)) as runner:
        assert runner.warnings() == []
        runner.predict([short, long, short])
        (warning,) = runner.warnings()
    assert warning.startswith(f"1 example is longer than the context sentiment-v2.gguf was trained on ({trained} "
                              f"tokens, its context_length), though within eval.n_ctx ({4 * trained}): "
                              "'long' (line 9, ")
    assert "'short'" not in warning
