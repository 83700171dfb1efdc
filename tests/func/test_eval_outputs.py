"""`git model eval` refuses to write an outputs.jsonl line its schema does not allow, and keeps the
previous results."""
from __future__ import annotations

import pytest

from gitmodel.cli import cli
from gitmodel.runners.python import PythonRunner
from tests.conftest import snapshot_tree

KW = ["eval", "kw", "--evalset", "sentiment", "--runner", "python", "--entry", "kw:predict"]


@pytest.mark.slow
def test_eval_refuses_an_output_the_schema_does_not_allow(registry, runner, monkeypatch):
    (registry / "kw.py").write_text("def predict(inputs):\n    return [('positive', 0.6) for t in inputs]\n")
    assert runner.invoke(cli, KW).exit_code == 0
    before = snapshot_tree(registry)
    predict = PythonRunner.predict

    def out_of_range(self, examples, progress=None):
        # the fault: a runner that lets a confidence above 1 through
        predictions = predict(self, examples, progress)
        predictions[2].confidence = 1.5
        return predictions

    monkeypatch.setattr(PythonRunner, "predict", out_of_range)
    result = runner.invoke(cli, [*KW, "--force"])
    assert result.exit_code == 3, (result.output, result.stderr)
    lines = result.stderr.splitlines()
    assert lines[0] == ("Error: not written: metrics/kw/sentiment.outputs.jsonl:3: "
                        "field confidence: 1.5 is greater than the maximum of 1")
    assert lines[1].startswith("  hint: the runner's answer to example ")
    assert snapshot_tree(registry) == before
