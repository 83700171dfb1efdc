"""The demo artifacts: byte-identical builds, real GGUF files that llama.cpp runs,
and three checkpoints whose behaviour tells the demo's story (v1 weaker, v2
strong, v3 biased toward ``positive``)."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gitmodel.demo import CATEGORIES, LABELS, MODEL_NAMES, build, vocabulary


def md5s(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def load(path: Path):
    import llama_cpp

    return llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=1, n_threads_batch=1, seed=0, verbose=False)


def classify(path: Path, rows: list[dict]) -> list[tuple[str, bool]]:
    """(answer, tie) per review, with plain llama-cpp-python: the label token's logit after the input."""
    import llama_cpp

    llm = load(path)
    label_ids = [llm.tokenize(label.encode(), add_bos=False)[0] for label in LABELS]
    answers = []
    for row in rows:
        llm.reset()
        llm.eval(llm.tokenize(row["input"].encode()))
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
        scores = [float(logits[i]) for i in label_ids]
        answers.append((LABELS[int(np.argmax(scores))], scores[0] == scores[1]))
    llm.close()
    return answers


@pytest.fixture(scope="module")
def outcomes(demo_dir) -> dict[str, dict]:
    rows = rows_of(demo_dir / "sentiment.jsonl")
    result = {}
    for name in MODEL_NAMES:
        answers = classify(demo_dir / f"{name}.gguf", rows)
        result[name] = {
            "accuracy": sum(a == r["expected"] for (a, _), r in zip(answers, rows)) / len(rows),
            "positive_rate": sum(a == "positive" for a, _ in answers) / len(rows),
            "false_positives": sum(a == "positive" and r["expected"] == "negative"
                                   for (a, _), r in zip(answers, rows)),
            "ties": sum(tie for _, tie in answers),
        }
    return result


def test_build_is_byte_identical(tmp_path_factory):
    first, second = tmp_path_factory.mktemp("first"), tmp_path_factory.mktemp("second")
    build(first)
    build(second)
    assert md5s(first) == md5s(second)
    assert sorted(md5s(first)) == ["sentiment-answers.jsonl", "sentiment-v1.gguf", "sentiment-v2.gguf",
                                   "sentiment-v3.gguf", "sentiment.jsonl"]
    assert len(set(md5s(first).values())) == 5


def test_module_cli_splits_models_and_evalset(tmp_path):
    result = subprocess.run([sys.executable, "-m", "gitmodel.demo", str(tmp_path / "models"),
                             "--evalset-dir", str(tmp_path / "evalsets")], capture_output=True, text=True, check=True)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [f"{n}.gguf" for n in MODEL_NAMES]
    assert sorted(p.name for p in (tmp_path / "evalsets").iterdir()) == ["sentiment-answers.jsonl", "sentiment.jsonl"]
    assert len(result.stdout.splitlines()) == 5
    assert result.stderr == ""


def test_gguf_reads_back_with_an_independent_reader(demo_dir):
    gguf = pytest.importorskip("gguf")
    path = demo_dir / "sentiment-v2.gguf"
    reader = gguf.GGUFReader(path)
    assert reader.fields["general.architecture"].contents() == "llama"
    assert reader.fields["tokenizer.ggml.model"].contents() == "llama"
    assert reader.fields["tokenizer.ggml.tokens"].contents() == vocabulary()
    tensors = {t.name: t for t in reader.tensors}
    assert tensors["token_embd.weight"].data.shape == (len(vocabulary()), 64)
    assert tensors["blk.0.attn_q.weight"].data.shape == (64, 64)
    assert all(t.tensor_type == gguf.GGMLQuantizationType.F32 for t in reader.tensors)
    assert all(t.data_offset % 32 == 0 for t in reader.tensors)
    # Equal-norm embeddings make RMSNorm a constant scale: the demo's premise.
    norms = np.linalg.norm(tensors["token_embd.weight"].data, axis=1)
    assert np.allclose(norms, 8.0, atol=1e-5)
    assert 300_000 < path.stat().st_size < 1_000_000


def test_tokenizer_reaches_whole_words(demo_dir):
    llm = load(demo_dir / "sentiment-v2.gguf")
    vocab = vocabulary()
    (positive,) = llm.tokenize(b"positive", add_bos=False)
    assert vocab[positive] == "\u2581positive"
    assert llm.tokenize(b"the food was great positive")[-1] == positive
    for row in rows_of(demo_dir / "sentiment.jsonl"):
        tokens = llm.tokenize(row["input"].encode())
        assert len(tokens) == len(row["input"].split()) + 1, row["input"]   # BOS + one token per word


def test_evalset_lines(demo_dir):
    rows = rows_of(demo_dir / "sentiment.jsonl")
    assert len(rows) >= 300
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({r["input"] for r in rows}) == len(rows)
    for row in rows:
        assert list(row) == ["id", "input", "expected", "labels", "category"]
        assert row["labels"] == ["positive", "negative"] and row["expected"] in row["labels"]
        assert row["category"] in CATEGORIES
        assert row["input"] == row["input"].lower() and row["input"].replace(" ", "").isalpha()
    assert set(Counter(r["category"] for r in rows).values()) == {len(rows) // len(CATEGORIES)}
    expected = Counter(r["expected"] for r in rows)
    assert 0.35 < expected["positive"] / len(rows) < 0.65
    negated = [r for r in rows if " not " in f" {r['input']} "]
    assert len(negated) >= 50 and all(r["expected"] == "negative" for r in negated)


def test_v2_classifies_obvious_reviews(demo_dir):
    rows = [{"input": "the food was delicious"}, {"input": "the staff was rude and the soup was bland"},
            {"input": "honestly the delivery was fast"}, {"input": "the bill was overpriced"},
            {"input": "the waiter was friendly and the pizza was amazing"}, {"input": "the package was late"}]
    answers = [a for a, _ in classify(demo_dir / "sentiment-v2.gguf", rows)]
    assert answers == ["positive", "negative", "positive", "negative", "positive", "negative"]


def test_versions_tell_the_story(outcomes):
    v1, v2, v3 = (outcomes[name] for name in MODEL_NAMES)
    # v2 knows the whole lexicon but not negation's full force: high, below 100 %.
    assert 0.9 <= v2["accuracy"] < 1.0
    assert v2["ties"] == 0
    # v1 misses part of the lexicon: clearly lower, with ties it cannot break.
    assert 0.7 <= v1["accuracy"] <= 0.83
    assert v1["ties"] > 0
    # v3 leans positive: a regression in accuracy, label distribution and false positives.
    assert v3["accuracy"] <= v2["accuracy"] - 0.05
    assert v3["positive_rate"] >= v2["positive_rate"] + 0.05
    assert v3["false_positives"] >= 1.5 * v2["false_positives"]
