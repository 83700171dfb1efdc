"""``dvc.yaml``: the artifacts (one per model) and the ``eval`` stage, one eval per declared pair.

The eval stage is a ``foreach`` over the model x eval set pairs that belong
together, keyed ``<model>-<evalset>`` (the names DVC's ``matrix`` gave them, so
that ``dvc.lock`` entries survive the move from a matrix). The pairs listed
there are the one record of which eval sets a model is evaluated on: what DVC
runs is what git-model reads, and a hand edit of the list is a pairing edit.

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
PARAMS_FILE = "params.yaml"   # params.PARAMS_FILE; not imported, so that readers of dvc.yaml stay light
EVALSET_OVERRIDES = "eval.evalsets"   # per eval set settings in params.yaml, one dependency per pair
MODEL_OVERRIDES = "eval.models"       # per model settings, likewise


def model_path(name: str) -> str:
    return f"{MODELS_DIR}/{name}.gguf"


def evalset_path(name: str) -> str:
    return f"{EVALSETS_DIR}/{name}.jsonl"


def metrics_path(model: str, evalset: str) -> str:
    return f"{METRICS_DIR}/{model}/{evalset}.json"


def outputs_path(model: str, evalset: str) -> str:
    return f"{METRICS_DIR}/{model}/{evalset}.outputs.jsonl"


# metrics/<model>/review.json holds the model's human review (git model review import), beside its eval
# results: "review" is therefore no eval set's name, and every reader of metrics/<model>/*.json skips it.
REVIEW_NAME = "review"


def review_path(model: str) -> str:
    return f"{METRICS_DIR}/{model}/{REVIEW_NAME}.json"


def is_result_file(filename: str) -> bool:
    """A file directly under ``metrics/<model>/`` that holds an eval result (``<evalset>.json``): not
    the human review, not an outputs file."""
    return filename.endswith(".json") and filename != f"{REVIEW_NAME}.json" \
        and not filename.endswith(".outputs.json")


HEADER = """\
# Managed by git-model: `git model add` fills `artifacts`, `git model add --evalset` and
# `git model evalset add --for` the pairs of the eval stage (`git model pairs` lists them).
# Your own stages may live here too; git-model leaves them alone.
"""

STAGE_COMMENT = """\
One eval per declared model x eval set pair. `dvc repro` re-runs exactly the
pairs whose weights, eval set or result-shaping `eval` params changed."""

EVAL_CMD = "git model eval ${item.model} --evalset ${item.evalset}"


def stage_params() -> list[str]:
    """The params.yaml keys every pair depends on: the eval settings recorded with a result (read from
    params.py when called, so a key added there becomes a dependency), the openai runner's own, and the
    pair's model's and eval set's overrides (so a change of one model's re-runs that model's pairs
    only). Timeouts, retries, concurrency and the key's variable are not among them: they cannot change
    an output."""
    from gitmodel import params

    keys = [f"eval.{k}" for k in params.RESULT_KEYS]
    keys += [f"eval.openai.{k}" for k in params.OPENAI_RESULT_KEYS]
    return keys + [f"{MODEL_OVERRIDES}.${{item.model}}", f"{EVALSET_OVERRIDES}.${{item.evalset}}"]


def new_eval_stage():
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    def mapping(**items):
        m = CommentedMap()
        m.update(items)
        return m

    do = mapping(
        cmd=EVAL_CMD,
        deps=CommentedSeq([model_path("${item.model}"), evalset_path("${item.evalset}")]),
        params=CommentedSeq(stage_params()),
        metrics=CommentedSeq([mapping(**{metrics_path("${item.model}", "${item.evalset}"): mapping(cache=False)})]),
        outs=CommentedSeq([mapping(**{outputs_path("${item.model}", "${item.evalset}"): mapping(cache=False)})]),
    )
    return mapping(foreach=CommentedMap(), do=do)


def template() -> str:
    """The dvc.yaml `git model init` writes into a repository that has none."""
    from ruamel.yaml.comments import CommentedMap

    data = CommentedMap()
    data["artifacts"] = CommentedMap()
    data["stages"] = CommentedMap()
    data["stages"][EVAL_STAGE] = new_eval_stage()
    data["stages"].yaml_set_comment_before_after_key(EVAL_STAGE, before=STAGE_COMMENT, indent=2)
    return HEADER + dump(data)


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.preserve_quotes = True
    yaml.width = 4096     # a pair `name: {model: m, evalset: e}` stays on its line, however long the names
    return yaml


def load(root: Path):
    path = Path(root) / DVC_YAML
    if not path.is_file():
        return None
    return parse(path.read_text("utf-8"), path)


def parse(text: str, where):
    """A dvc.yaml's text, loaded round-trip; ``where`` names it in errors (a path, or path at a revision)."""
    from ruamel.yaml import YAMLError

    from gitmodel.yamlio import describe

    try:
        data = _yaml().load(text)
    except YAMLError as e:
        raise DvcError(f"{where}: not valid YAML: {describe(e)}", hint="fix the file by hand, or move it away and run `git model init`") from None
    if data is None:
        from ruamel.yaml.comments import CommentedMap
        return CommentedMap()
    if not isinstance(data, dict):
        raise DvcError(f"{where}: expected a mapping at the top level (stages:, artifacts:), got a {type(data).__name__}",
                       hint="fix the file by hand, or move it away and run `git model init`")
    return data


def dump(data) -> str:
    buf = io.StringIO()
    _yaml().dump(data, buf)
    return buf.getvalue()


def is_matrix(stage) -> bool:
    """The eval stage as git-model wrote it before pairs: one eval per model x eval set."""
    return isinstance(stage, dict) and isinstance(stage.get("matrix"), dict)


def _is_ours(stage) -> bool:
    return is_matrix(stage) or (isinstance(stage, dict) and isinstance(stage.get("do"), dict)
                                and stage["do"].get("cmd") == EVAL_CMD)


def eval_stage(data, path, *, create: bool = True):
    """The eval stage of ``data`` (a loaded dvc.yaml), added when there is none and ``create``; None
    when there is none and not ``create``. Raises DvcError when ``stages.eval`` is a stage of the user's."""
    stages = data.get("stages") if isinstance(data, dict) else None
    stage = stages.get(EVAL_STAGE) if isinstance(stages, dict) else None
    if stage is None:
        if not create:
            return None
        from ruamel.yaml.comments import CommentedMap

        if not isinstance(stages, dict):
            stages = data["stages"] = CommentedMap()
        stage = stages[EVAL_STAGE] = new_eval_stage()
    if not _is_ours(stage):
        raise DvcError(f"{path}: stages.eval is not git-model's eval stage (no foreach of pairs running "
                       f"`{EVAL_CMD}`)", hint="rename your own `eval` stage, then run `git model init` again")
    return stage


def pair_key(model: str, evalset: str, taken) -> str:
    """The foreach key (so the stage name ``eval@<key>``) of a pair. ``<model>-<evalset>`` is the name
    DVC's matrix gave the pair; when another pair already has it (``a-b`` x ``c`` and ``a`` x ``b-c``),
    a dot, which no name holds, tells them apart."""
    key = f"{model}-{evalset}"
    return key if key not in taken else f"{model}.{evalset}"


def pairs_of(stage, where) -> list[tuple[str, str]]:
    """The (model, evalset) pairs of an eval stage, in file order: its foreach items, or every model x
    every eval set of a matrix. Raises DvcError naming the entry that is not a pair."""
    if stage is None:
        return []
    if is_matrix(stage):
        m = stage["matrix"]
        return [(model, evalset) for model in m.get("model") or [] for evalset in m.get("evalset") or []]
    items = stage.get("foreach")
    if items is None:
        return []
    entries = items.items() if isinstance(items, dict) else enumerate(items) if isinstance(items, list) else None
    if entries is None:
        raise DvcError(f"{where}: stages.eval.foreach must be a mapping of pairs, got {items!r}",
                       hint="each entry: `<model>-<evalset>: {model: <model>, evalset: <evalset>}`")
    found = []
    for key, item in entries:
        if not (isinstance(item, dict) and isinstance(item.get("model"), str) and isinstance(item.get("evalset"), str)):
            raise DvcError(f"{where}: stages.eval.foreach.{key} is not a pair: {dict(item) if isinstance(item, dict) else item!r}",
                           hint=f"write it as `{key}: {{model: <model>, evalset: <evalset>}}`")
        pair = (item["model"], item["evalset"])
        if pair not in found:
            found.append(pair)
    return found


def with_pairs(data, pairs, path):
    """``data`` (a loaded dvc.yaml) whose eval stage evaluates exactly ``pairs`` (in that order), a matrix
    moved to a foreach, and the stage's params refreshed. Keys of pairs already there are kept."""
    from ruamel.yaml.comments import CommentedMap

    stage = eval_stage(data, path)
    old = {}
    if not is_matrix(stage) and isinstance(stage.get("foreach"), dict):
        for key, item in stage["foreach"].items():
            if isinstance(item, dict):
                old.setdefault((item.get("model"), item.get("evalset")), key)
    if is_matrix(stage):
        fresh = new_eval_stage()
        for key in list(stage):
            del stage[key]
        stage.update(fresh)
    items = CommentedMap()
    for model, evalset in pairs:
        key = old.get((model, evalset))
        if key is None or key in items:
            key = pair_key(model, evalset, items)
        item = CommentedMap()
        item["model"], item["evalset"] = model, evalset
        item.fa.set_flow_style()
        items[key] = item
    stage["foreach"] = items
    stage["do"]["params"] = _refreshed_params(stage["do"].get("params"))
    return data


def _refreshed_params(current):
    """The stage's params: git-model's keys as params.py gives them now, then any the user added."""
    from ruamel.yaml.comments import CommentedSeq

    ours = stage_params()
    mine = set(ours)
    extra = [p for p in (current or []) if not (isinstance(p, str) and (p in mine or p == "eval"
                                                                       or p.startswith("eval.")))]
    return CommentedSeq(ours + extra)


def stage_params_current(stage) -> bool:
    """The stage's params are the keys params.py lists now (a git-model upgrade may add some)."""
    have = [p for p in ((stage.get("do") or {}).get("params") or []) if isinstance(p, str)]
    return not is_matrix(stage) and all(p in have for p in stage_params()) and "eval" not in have


def artifact_meta(meta: dict) -> dict:
    """The short form of a model's meta kept in dvc.yaml; the .dvc file holds the full lineage."""
    short = dict(meta.get("gguf") or {})
    base = (meta.get("lineage") or {}).get("base_model")
    if base:
        short["base_model"] = base
    return short


def with_model(data, name: str, meta: dict, path: Path):
    """``data`` (a loaded dvc.yaml) with the artifact of a model (its pairs are set apart)."""
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
    eval_stage(data, path)
    return data


def declared_pairs(root: Path) -> list[tuple[str, str]]:
    """The pairs the workspace's dvc.yaml evaluates."""
    path = Path(root) / DVC_YAML
    data = load(root)
    return pairs_of(eval_stage(data, path, create=False), path) if data is not None else []


def matrix(root: Path) -> tuple[list[str], list[str]]:
    """(models, eval sets) named by the eval stage's pairs."""
    found = declared_pairs(root)
    return list(dict.fromkeys(m for m, _ in found)), list(dict.fromkeys(e for _, e in found))


def artifacts(root: Path) -> dict:
    data = load(root) or {}
    return dict(data.get("artifacts") or {})
