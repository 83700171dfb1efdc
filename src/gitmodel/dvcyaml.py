"""``dvc.yaml``: the artifacts (one per model) and the ``eval`` matrix stage.

Edited round-trip (ruamel.yaml), so a user's own stages, comments and order
survive every ``git model`` command that touches the file.
"""
from __future__ import annotations

import io
from pathlib import Path

from gitmodel.errors import DvcError

DVC_YAML = "dvc.yaml"
MODELS_DIR = "models"
EVALSETS_DIR = "evalsets"
METRICS_DIR = "metrics"
EVAL_STAGE = "eval"


def model_path(name: str) -> str:
    return f"{MODELS_DIR}/{name}.gguf"


def evalset_path(name: str) -> str:
    return f"{EVALSETS_DIR}/{name}.jsonl"


def metrics_path(model: str, evalset: str) -> str:
    return f"{METRICS_DIR}/{model}/{evalset}.json"


def outputs_path(model: str, evalset: str) -> str:
    return f"{METRICS_DIR}/{model}/{evalset}.outputs.jsonl"


TEMPLATE = """\
# Managed by git-model: `git model add` fills `artifacts` and the eval matrix.
# Your own stages may live here too; git-model leaves them alone.
artifacts: {}
stages:
  # One eval per model x eval set. `dvc repro` re-runs exactly the pairs whose
  # weights, eval set or `eval` params changed.
  eval:
    matrix:
      model: []
      evalset: []
    cmd: git model eval ${item.model} --evalset ${item.evalset}
    deps:
      - models/${item.model}.gguf
      - evalsets/${item.evalset}.jsonl
    params:
      - eval
    metrics:
      - metrics/${item.model}/${item.evalset}.json:
          cache: false
    outs:
      - metrics/${item.model}/${item.evalset}.outputs.jsonl:
          cache: false
"""


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.preserve_quotes = True
    return yaml


def load(root: Path):
    path = Path(root) / DVC_YAML
    if not path.is_file():
        return None
    from ruamel.yaml import YAMLError

    from gitmodel.yamlio import describe

    try:
        data = _yaml().load(path.read_text("utf-8"))
    except YAMLError as e:
        raise DvcError(f"{path}: not valid YAML: {describe(e)}", hint="fix the file by hand, or move it away and run `git model init`") from None
    if data is None:
        from ruamel.yaml.comments import CommentedMap
        return CommentedMap()
    if not isinstance(data, dict):
        raise DvcError(f"{path}: expected a mapping at the top level (stages:, artifacts:), got a {type(data).__name__}",
                       hint="fix the file by hand, or move it away and run `git model init`")
    return data


def dump(data) -> str:
    buf = io.StringIO()
    _yaml().dump(data, buf)
    return buf.getvalue()


def _eval_stage(data, path: Path):
    from ruamel.yaml.comments import CommentedMap

    stages = data.setdefault("stages", CommentedMap())
    stage = stages.get(EVAL_STAGE)
    if stage is None:
        stage = _yaml().load(TEMPLATE)["stages"][EVAL_STAGE]
        stages[EVAL_STAGE] = stage
    matrix = stage.get("matrix")
    if not isinstance(matrix, dict):
        raise DvcError(f"{path}: stages.eval has no matrix: it was not written by git-model",
                       hint="rename your own `eval` stage, then run `git model init` again")
    return matrix


def artifact_meta(meta: dict) -> dict:
    """The short form of a model's meta kept in dvc.yaml; the .dvc file holds the full lineage."""
    short = dict(meta.get("gguf") or {})
    base = (meta.get("lineage") or {}).get("base_model")
    if base:
        short["base_model"] = base
    return short


def _append(seq, value):
    if value not in seq:
        seq.append(value)


def with_model(data, name: str, meta: dict, path: Path):
    """``data`` (a loaded dvc.yaml) with the artifact and the matrix entry of a model."""
    from ruamel.yaml.comments import CommentedMap

    artifacts = data.get("artifacts")
    if not isinstance(artifacts, dict):
        artifacts = CommentedMap()
        data.insert(0, "artifacts", artifacts)
    entry = artifacts.get(name) or CommentedMap()
    entry["path"] = model_path(name)
    entry["type"] = "model"
    entry["meta"] = artifact_meta(meta)
    artifacts[name] = entry
    _append(_eval_stage(data, path)["model"], name)
    return data


def with_evalset(data, name: str, path: Path):
    _append(_eval_stage(data, path)["evalset"], name)
    return data


def matrix(root: Path) -> tuple[list[str], list[str]]:
    """(models, eval sets) of the eval matrix."""
    data = load(root) or {}
    stage = (data.get("stages") or {}).get(EVAL_STAGE) or {}
    m = stage.get("matrix") or {}
    return list(m.get("model") or []), list(m.get("evalset") or [])


def artifacts(root: Path) -> dict:
    data = load(root) or {}
    return dict(data.get("artifacts") or {})
