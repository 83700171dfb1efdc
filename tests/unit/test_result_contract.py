"""One result contract: the core's results render themselves (`to_dict`), the CLI only emits them."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gitmodel.cli

CLI_DIR = Path(gitmodel.cli.__file__).parent


def _emit_json_args():
    for path in sorted(CLI_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "emit_json":
                yield path.name, node.lineno, node.args[0]


def test_the_cli_builds_no_json_by_hand():
    built = [f"{name}:{line}" for name, line, arg in _emit_json_args()
             if not isinstance(arg, (ast.Call, ast.ListComp, ast.Name))
             or any(isinstance(n, ast.Dict) for n in ast.walk(arg))]
    assert built == []
    assert list(_emit_json_args()), "emit_json is how the CLI prints --json"


def test_no_to_json_contract_is_left():
    src = CLI_DIR.parent
    assert [p.name for p in src.rglob("*.py") if "to_json(" in p.read_text()] == []


@pytest.mark.parametrize("module, name", [
    ("ci", "CiResult"), ("diffing", "DiffResult"), ("evaluate", "EvalResult"), ("gaterules", "GateOutcome"),
    ("history", "LogEntry"), ("history", "Shown"), ("project", "InitResult"), ("releasing", "ReleaseResult"),
    ("pairtable", "PairsTable"), ("pairtable", "RemoveResult"), ("pairtable", "PruneResult"),
    ("rollback", "RollbackResult"), ("stages", "PromoteResult"), ("status", "ModelStatus"),
    ("tracking", "AddResult"), ("tracking", "EvalSetResult"), ("verify", "VerifyReport"),
    ("sharing", "PushResult"), ("sharing", "FetchResult"), ("sharing", "ReleasePushResult"), ("gc", "GcResult"),
])
def test_every_result_a_command_prints_has_to_dict(module, name):
    import importlib

    assert callable(getattr(getattr(importlib.import_module(f"gitmodel.{module}"), name), "to_dict", None))


def test_init_result_carries_the_ci_workflow(tmp_path):
    from gitmodel.ci import CiResult
    from gitmodel.project import InitResult

    plain = InitResult(root=tmp_path, created=["dvc.yaml"])
    assert plain.to_dict() == {"root": str(tmp_path), "changed": True, "created": ["dvc.yaml"]}
    plain.ci = CiResult(path=".github/workflows/git-model.yml", status="kept")
    assert plain.to_dict()["ci"] == {"path": ".github/workflows/git-model.yml", "status": "kept"}
