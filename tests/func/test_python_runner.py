"""The python runner on a classifier module the test writes, and the runner factory."""
from __future__ import annotations

import itertools
import math
import subprocess
import sys
import textwrap

import pytest

from gitmodel.errors import RunnerError
from gitmodel.runners import RUNNERS, make_runner
from gitmodel.runners.base import Example, RunSettings
from gitmodel.runners.python import PythonRunner

LABELS = ("fraud", "ok")
EXAMPLES = [
    Example(id="tx-1", input="wire transfer to offshore account", expected="fraud", labels=LABELS),
    Example(id="tx-2", input="coffee at the corner shop", expected="ok", labels=LABELS),
    Example(id="tx-3", input="gift card bulk purchase", expected="fraud", labels=LABELS),
    Example(id="tx-4", input="monthly rent", expected="ok", labels=LABELS),
    Example(id="tx-5", input="urgent wire to new payee", expected="fraud", labels=LABELS),
]
GENERATION = [Example(id="s-1", input="summarize: rent paid"), Example(id="s-2", input="summarize: coffee")]

FRAUD_CLASSIFIER = '''
"""A keyword fraud classifier, the kind of non-LLM model a team versions."""
__version__ = "1.4.0"
KEYWORDS = ("wire", "offshore", "gift card", "urgent")
CALLS = []

def hits(text):
    return sum(word in text for word in KEYWORDS)

def predict(inputs):
    CALLS.append(len(inputs))
    return ["fraud" if hits(text) else "ok" for text in inputs]

def predict_pairs(inputs):
    return [("fraud", 0.9) if hits(text) else ("ok", 0.75) for text in inputs]

def predict_dicts(inputs):
    return [{"label": "fraud" if hits(text) else "ok", "confidence": 0.8} for text in inputs]

def predict_dicts_no_confidence(inputs):
    return [{"label": "fraud" if hits(text) else "ok"} for text in inputs]

def predict_scores(inputs):
    return [{"scores": {"fraud": -0.1 * (3 - hits(text)), "ok": -0.15}} for text in inputs]

def predict_tuple(inputs):
    return tuple(predict(inputs))

def summarize(inputs):
    return [text.split(": ", 1)[1].upper() for text in inputs]

class Model:
    def predict(self, inputs):
        return predict(inputs)

model = Model()
'''

_names = itertools.count()


@pytest.fixture
def write_module(tmp_path):
    """Write a module into tmp_path under a fresh name; forget it afterwards."""
    written = []

    def write(source: str, package: str | None = None) -> str:
        name = f"gm_user_{next(_names)}"
        folder = tmp_path
        if package:
            folder = tmp_path / package
            folder.mkdir(exist_ok=True)
            (folder / "__init__.py").write_text("")
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
        written.append(name)
        return f"{package}.{name}" if package else name

    yield write
    # Runners that were not closed leave the folder on sys.path.
    while str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))
    for name in list(sys.modules):
        if any(name == w or name.endswith("." + w) or name.startswith("mypkg") for w in written):
            del sys.modules[name]


def runner(entry, tmp_path, **extra):
    return PythonRunner(entry, RunSettings(extra=extra), search_path=tmp_path)


def error_of(call) -> str:
    with pytest.raises(RunnerError) as info:
        call()
    return str(info.value)


# -- accepted shapes ------------------------------------------------------------------------


def test_label_strings_from_a_package_in_the_repository_root(tmp_path, write_module):
    module = write_module(FRAUD_CLASSIFIER, package="mypkg")
    r = runner(f"{module}:predict", tmp_path)
    predictions = r.predict(EXAMPLES)
    assert [p.label for p in predictions] == ["fraud", "ok", "fraud", "ok", "fraud"]
    assert [p.output for p in predictions] == [p.label for p in predictions]
    assert all(p.confidence is None and p.scores is None for p in predictions)
    assert r.info() == {"name": "python", "version": f"{module}:predict==1.4.0", "llama_cpp_version": None}
    r.close()
    assert str(tmp_path) not in sys.path


@pytest.mark.parametrize("function, confidences", [
    ("predict_pairs", [0.9, 0.75, 0.9, 0.75, 0.9]),
    ("predict_dicts", [0.8] * 5),
    ("predict_dicts_no_confidence", [None] * 5),
    ("predict_tuple", [None] * 5),
])
def test_label_and_confidence_shapes(tmp_path, write_module, function, confidences):
    module = write_module(FRAUD_CLASSIFIER)
    predictions = runner(f"{module}:{function}", tmp_path).predict(EXAMPLES)
    assert [p.label for p in predictions] == ["fraud", "ok", "fraud", "ok", "fraud"]
    assert [p.confidence for p in predictions] == confidences


def test_scores_give_softmax_confidence_and_ties(tmp_path, write_module):
    module = write_module(FRAUD_CLASSIFIER)
    predictions = runner(f"{module}:predict_scores", tmp_path).predict(EXAMPLES)
    # tx-1 hits two keywords: fraud -0.1 vs ok -0.15; tx-2 none: -0.3 vs -0.15.
    assert predictions[0].label == "fraud"
    assert predictions[0].confidence == pytest.approx(1 / (1 + math.exp(-0.05)))
    assert predictions[0].scores == {"fraud": pytest.approx(-0.1), "ok": -0.15}
    assert predictions[1].label == "ok" and not predictions[1].tie
    tie = Example(id="tie", input="x", labels=LABELS)
    entry = write_module('def f(inputs):\n    return [{"scores": {"ok": -1.0, "fraud": -1.0}}]\n')
    [p] = runner(f"{entry}:f", tmp_path).predict([tie])
    assert p.tie and p.label == "fraud" and p.confidence == pytest.approx(0.5)


def test_generation_texts(tmp_path, write_module):
    module = write_module(FRAUD_CLASSIFIER)
    predictions = runner(f"{module}:summarize", tmp_path).predict(GENERATION)
    assert [p.output for p in predictions] == ["RENT PAID", "COFFEE"]
    assert all(p.label is None and p.output_tokens == 0 for p in predictions)


def test_batches_and_progress(tmp_path, write_module):
    module = write_module(FRAUD_CLASSIFIER)
    r = runner(f"{module}:predict", tmp_path, batch_size=2)
    seen = []
    predictions = r.predict(EXAMPLES, progress=seen.append)
    assert len(predictions) == 5
    assert sys.modules[module].CALLS == [2, 2, 1]
    assert seen == [2, 2, 1]


def test_attribute_path_to_a_bound_method(tmp_path, write_module):
    module = write_module(FRAUD_CLASSIFIER)
    predictions = runner(f"{module}:model.predict", tmp_path).predict(EXAMPLES[:2])
    assert [p.label for p in predictions] == ["fraud", "ok"]
    assert runner(f"{module}:model.predict", tmp_path).info()["version"] == f"{module}:model.predict==1.4.0"


def test_no_version_means_the_entry_alone(tmp_path, write_module):
    module = write_module("def f(inputs):\n    return ['ok' for _ in inputs]\n")
    assert runner(f"{module}:f", tmp_path).info()["version"] == f"{module}:f"


# -- import failures ------------------------------------------------------------------------


def test_entry_without_a_colon(tmp_path):
    assert error_of(lambda: runner("mypkg.fraud.predict", tmp_path)) == (
        "python entry point 'mypkg.fraud.predict' is not of the form module:function"
    )


def test_module_that_does_not_exist(tmp_path):
    assert error_of(lambda: runner("gm_no_such_module:predict", tmp_path)) == (
        "python entry point 'gm_no_such_module:predict': cannot import module gm_no_such_module: "
        "ModuleNotFoundError: No module named 'gm_no_such_module'"
    )


def test_module_that_fails_while_importing(tmp_path, write_module):
    module = write_module("import json\nraise RuntimeError('model file missing')\n")
    assert error_of(lambda: runner(f"{module}:predict", tmp_path)) == (
        f"python entry point '{module}:predict': cannot import module {module}: "
        "RuntimeError: model file missing"
    )


def test_module_with_a_syntax_error(tmp_path, write_module):
    module = write_module("def predict(inputs)\n    return inputs\n")
    message = error_of(lambda: runner(f"{module}:predict", tmp_path))
    assert message.startswith(f"python entry point '{module}:predict': cannot import module {module}: SyntaxError: ")


def test_missing_attribute(tmp_path, write_module):
    module = write_module(FRAUD_CLASSIFIER)
    assert error_of(lambda: runner(f"{module}:classify", tmp_path)) == (
        f"python entry point '{module}:classify': module {module} has no attribute 'classify'"
    )


def test_not_callable(tmp_path, write_module):
    module = write_module(FRAUD_CLASSIFIER)
    assert error_of(lambda: runner(f"{module}:KEYWORDS", tmp_path)) == (
        f"python entry point '{module}:KEYWORDS': {module}.KEYWORDS is not callable (it is a tuple)"
    )


# -- wrong shapes ---------------------------------------------------------------------------

BAD_SHAPES = [
    ("return 'fraud'",
     "python entry point '{e}' returned a str, expected a list with one result per input"),
    ("return {'tx': 'fraud'}",
     "python entry point '{e}' returned a dict, expected a list with one result per input"),
    ("return ['ok'] * 3",
     "python entry point '{e}' returned 3 results for 5 inputs"),
    ("return ['ok', 'ok', 0.7, 'ok', 'ok']",
     "python entry point '{e}': item 2 (example 'tx-3') is a float, expected a label string, "
     "a (label, confidence) pair, or a dict with 'label' (and 'confidence') or 'scores'"),
    ("return ['ok', 'ok', 'maybe', 'ok', 'ok']",
     "python entry point '{e}': item 2 (example 'tx-3'): label 'maybe' not among the example's labels "
     "['fraud', 'ok']"),
    ("return [('ok', 0.5, 1)] * 5",
     "python entry point '{e}': item 0 (example 'tx-1') is a tuple of 3 items, expected a label string, "
     "a (label, confidence) pair, or a dict with 'label' (and 'confidence') or 'scores'"),
    ("return [(1, 0.5)] * 5",
     "python entry point '{e}': item 0 (example 'tx-1'): the label is a int, expected a string"),
    ("return [('ok', 1.5)] * 5",
     "python entry point '{e}': item 0 (example 'tx-1'): confidence 1.5 is not a number between 0 and 1"),
    ("return [('ok', True)] * 5",
     "python entry point '{e}': item 0 (example 'tx-1'): confidence True is not a number between 0 and 1"),
    ("return [{'prediction': 'ok'}] * 5",
     "python entry point '{e}': item 0 (example 'tx-1') is a dict without 'label' or 'scores' "
     "(keys: ['prediction']), expected a label string, a (label, confidence) pair, or a dict with "
     "'label' (and 'confidence') or 'scores'"),
    ("return [{'scores': [0.1, 0.2]}] * 5",
     "python entry point '{e}': item 0 (example 'tx-1'): 'scores' is a list, expected a dict label -> "
     "log-probability"),
    ("return [{'scores': {'fraud': -1.0}}] * 5",
     "python entry point '{e}': item 0 (example 'tx-1'): 'scores' has no score for label 'ok'"),
    ("return [{'scores': {'fraud': -1.0, 'ok': -2.0, 'maybe': -3.0}}] * 5",
     "python entry point '{e}': item 0 (example 'tx-1'): label 'maybe' not among the example's labels "
     "['fraud', 'ok']"),
    ("return [{'scores': {'fraud': float('nan'), 'ok': -2.0}}] * 5",
     "python entry point '{e}': item 0 (example 'tx-1'): score for 'fraud' is nan, expected a finite "
     "log-probability"),
    ("raise KeyError('amount')",
     "python entry point '{e}' raised KeyError: 'amount' (on items 0-4)"),
]


@pytest.mark.parametrize("body, expected", BAD_SHAPES, ids=[b for b, _ in BAD_SHAPES])
def test_wrong_shapes_name_the_entry_and_the_item(tmp_path, write_module, body, expected):
    module = write_module(f"def predict(inputs):\n    {body}\n")
    entry = f"{module}:predict"
    assert error_of(lambda: runner(entry, tmp_path).predict(EXAMPLES)) == expected.format(e=entry)


def test_generation_item_that_is_not_text(tmp_path, write_module):
    module = write_module("def predict(inputs):\n    return [None for _ in inputs]\n")
    entry = f"{module}:predict"
    assert error_of(lambda: runner(entry, tmp_path).predict(GENERATION)) == (
        f"python entry point '{entry}': item 0 (example 's-1') is a NoneType, expected the generated text (a string)"
    )


def test_bad_batch_size(tmp_path, write_module):
    module = write_module(FRAUD_CLASSIFIER)
    assert error_of(lambda: runner(f"{module}:predict", tmp_path, batch_size=0)) == (
        "python runner: batch_size must be a positive integer, got 0"
    )


# -- the factory ----------------------------------------------------------------------------


def test_make_runner_python_imports_from_the_root(tmp_path, write_module):
    module = write_module(FRAUD_CLASSIFIER, package="mypkg")
    r = make_runner("python", settings=RunSettings(), entry=f"{module}:predict", root=tmp_path)
    assert r.name == "python"
    assert [p.label for p in r.predict(EXAMPLES[:2])] == ["fraud", "ok"]
    r.close()


def test_make_runner_unknown_kind():
    assert RUNNERS == ("llama", "openai", "python")
    assert error_of(lambda: make_runner("vllm", settings=RunSettings())) == (
        "unknown runner 'vllm'; choose one of: llama, openai, python"
    )


def test_make_runner_missing_options():
    assert error_of(lambda: make_runner("openai", settings=RunSettings())) == (
        "the openai runner needs the endpoint's URL: pass --url"
    )
    assert error_of(lambda: make_runner("python", settings=RunSettings())) == (
        "the python runner needs an entry point: pass --entry module:function"
    )
    assert error_of(lambda: make_runner("llama", settings=RunSettings())) == (
        "the llama runner needs a model file (a GGUF checkpoint)"
    )


def test_python_and_openai_runners_do_not_import_llama_cpp(tmp_path, write_module):
    module = write_module(FRAUD_CLASSIFIER)
    code = textwrap.dedent(f"""
        import sys
        from gitmodel.runners import make_runner
        from gitmodel.runners.base import RunSettings
        make_runner("python", settings=RunSettings(), entry="{module}:predict", root={str(tmp_path)!r})
        make_runner("openai", settings=RunSettings(), url="http://127.0.0.1:9/v1")
        assert "llama_cpp" not in sys.modules, "llama_cpp was imported"
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
