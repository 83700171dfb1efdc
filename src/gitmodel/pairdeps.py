"""What each eval pair depends on in ``params.yaml``, made to exist, and read back from ``dvc.lock``.

DVC refuses to run a stage whose params dependency is missing from
params.yaml, so every key the eval stage lists (dvcyaml.stage_params) is
written there with its default, and each paired eval set and model gets its
own (possibly empty) ``eval.evalsets.<name>`` / ``eval.models.<name>`` section:
an override added there later is then a change of that section, which re-runs
that eval set's (or model's) pairs and no other.

A repository whose eval stage was a matrix recorded the whole ``eval``
section in each ``dvc.lock`` entry, and one made before a key became a
dependency recorded no value for it; :func:`migrated_lock` records the values
those settings had for the keys a pair depends on now, so an upgrade re-runs
nothing that was up to date.
"""
from __future__ import annotations

import copy
from pathlib import Path

from gitmodel import dvcyaml
from gitmodel.errors import InvalidParams

LOCK_FILE = "dvc.lock"
_MISSING = object()


def _defaults() -> dict:
    from gitmodel import params

    return {"eval": params.EVAL_DEFAULTS}


def keys_for(model: str, evalset: str) -> list[str]:
    """The params.yaml keys (dotted) that the pair (``model``, ``evalset``) depends on."""
    return [k.replace("${item.model}", model).replace("${item.evalset}", evalset) for k in dvcyaml.stage_params()]


def _shared_keys() -> list[str]:
    """The keys every pair depends on (not one model's or eval set's section)."""
    return [k for k in dvcyaml.stage_params() if "${item." not in k]


def _default_of(key: str):
    if key.startswith((dvcyaml.EVALSET_OVERRIDES + ".", dvcyaml.MODEL_OVERRIDES + ".")):
        return {}
    node = _defaults()
    for part in key.split("."):
        node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
    return None if node is _MISSING else node


def missing_keys(data: dict, keys) -> list[str]:
    """The dotted ``keys`` absent from ``data`` (params.yaml, loaded)."""
    missing = []
    for key in keys:
        node = data
        for part in key.split("."):
            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
            if node is _MISSING:
                missing.append(key)
                break
    return missing


def _round_trip():
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.preserve_quotes = True
    # a default of None is written `null`, as params.yaml's template writes it, not left empty
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


def with_keys(root: Path, evalsets, models=()) -> str | None:
    """params.yaml's new text with every key the pairs of ``evalsets`` and ``models`` depend on (None:
    nothing to add). Comments and order are kept; a missing key gets its default."""
    from ruamel.yaml import YAMLError
    from ruamel.yaml.comments import CommentedMap

    from gitmodel.yamlio import describe

    path = Path(root) / dvcyaml.PARAMS_FILE
    text = path.read_text("utf-8") if path.is_file() else ""
    yaml = _round_trip()
    try:
        data = yaml.load(text) if text.strip() else None
    except YAMLError as e:
        raise InvalidParams(f"{path}: not valid YAML: {describe(e)}") from None
    if data is None:
        data = CommentedMap()
    if not isinstance(data, dict):
        raise InvalidParams(f"{path}: expected a mapping at the top level")
    keys = _shared_keys() + [f"{dvcyaml.MODEL_OVERRIDES}.{m}" for m in dict.fromkeys(models)] \
        + [f"{dvcyaml.EVALSET_OVERRIDES}.{e}" for e in dict.fromkeys(evalsets)]
    missing = missing_keys(data, keys)
    if not missing:
        return None
    for key in missing:
        parts = key.split(".")
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = CommentedMap()
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise InvalidParams(f"{path}: {where} must be a mapping (the eval stage reads {key})",
                                    hint=f"fix {where} in {dvcyaml.PARAMS_FILE}")
            node = child
        default = _default_of(key)
        if isinstance(default, dict):
            fresh = CommentedMap()
            fresh.update(copy.deepcopy(default))
            default = fresh
        node[parts[-1]] = copy.deepcopy(default)
    import io

    buf = io.StringIO()
    yaml.dump(data, buf)
    return buf.getvalue()


# ----------------------------------------------------------------------------- dvc.lock


def _load_lock(root: Path, round_trip: bool):
    from ruamel.yaml import YAML, YAMLError

    from gitmodel.errors import DvcError
    from gitmodel.yamlio import describe

    path = Path(root) / LOCK_FILE
    if not path.is_file():
        return None, None
    yaml = YAML() if round_trip else YAML(typ="safe", pure=True)
    if round_trip:
        # as DVC writes dvc.lock (null as nothing), so that `dvc repro` leaves the migrated file as it is
        yaml.indent(mapping=2, sequence=2, offset=0)
        yaml.width = 4096
        yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", ""))
    try:
        return yaml, yaml.load(path.read_text("utf-8"))
    except YAMLError as e:
        raise DvcError(f"{path}: not valid YAML: {describe(e)}", hint="`dvc repro` rewrites it") from None


def migrated_lock(root: Path, pairs: list[tuple[str, str]], keys_of_stage: dict[tuple[str, str], str]) -> str | None:
    """dvc.lock's new text, each pair's entry recording every key it depends on now (None: nothing to
    change). An entry a matrix made (the whole ``eval`` section) records those keys' values in it; an
    entry made before a key was a dependency records the key's default, the value the run had (an
    override section that did not exist is ``{}``). Keys recorded already are kept as they are, so a
    setting changed since still re-runs its pairs. ``keys_of_stage``: pair -> foreach key."""
    from ruamel.yaml.comments import CommentedMap

    yaml, data = _load_lock(root, round_trip=True)
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, dict):
        return None
    changed = False
    for pair in pairs:
        entry = stages.get(f"{dvcyaml.EVAL_STAGE}@{keys_of_stage.get(pair)}")
        recorded = ((entry or {}).get("params") or {}).get(dvcyaml.PARAMS_FILE) if isinstance(entry, dict) else None
        if not isinstance(recorded, dict):
            continue
        matrix = isinstance(recorded.get("eval"), dict)
        wanted = keys_for(*pair)
        if not matrix and all(key in recorded for key in wanted):
            continue
        fresh = {} if matrix else dict(recorded)
        for key in wanted:
            if matrix:
                node = {"eval": recorded["eval"]}
                for part in key.split("."):
                    node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
                fresh[key] = _default_of(key) if node is _MISSING else node
            elif key not in fresh:
                fresh[key] = _default_of(key)
        replaced = CommentedMap()
        for key in sorted(fresh):
            replaced[key] = fresh[key]
        entry["params"][dvcyaml.PARAMS_FILE] = replaced
        changed = True
    if not changed:
        return None
    import io

    buf = io.StringIO()
    yaml.dump(data, buf)
    return buf.getvalue()


def lock_params(text: str, where) -> dict:
    """stage name -> {"params": the params.yaml values its dvc.lock entry records, "outs": path -> md5},
    from dvc.lock's text."""
    from ruamel.yaml import YAML, YAMLError

    from gitmodel.errors import DvcError
    from gitmodel.yamlio import describe

    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as e:
        raise DvcError(f"{where}: not valid YAML: {describe(e)}", hint="`dvc repro` rewrites it") from None
    stages = data.get("stages") if isinstance(data, dict) else None
    found = {}
    for name, entry in (stages or {}).items() if isinstance(stages, dict) else ():
        recorded = ((entry or {}).get("params") or {}).get(dvcyaml.PARAMS_FILE) if isinstance(entry, dict) else None
        if isinstance(recorded, dict):
            outs = {str(o.get("path")): o.get("md5") for o in entry.get("outs") or [] if isinstance(o, dict)}
            found[str(name)] = {"params": recorded, "outs": outs}
    return found


def lock_param_changes(recorded_by_stage: dict, pairs: list[tuple[str, str]], keys_of_stage: dict,
                       current: dict, metrics_md5: dict | None = None) -> dict:
    """pair -> ``eval.evalsets.x: recorded {...}, now {...}`` for every params.yaml key whose value differs
    from what the pair's dvc.lock entry recorded (as ``dvc status`` reports it); pairs without an entry
    are left out (nothing recorded, nothing to compare), and so are pairs whose metrics file is not the
    one the entry records (``metrics_md5``: pair -> md5 of the workspace file): `git model eval` wrote
    it since, with the params of now. ``recorded_by_stage``: :func:`lock_params`; ``current``:
    params.yaml's values. Pure."""
    import json

    found: dict = {}
    for pair in pairs:
        entry = recorded_by_stage.get(f"{dvcyaml.EVAL_STAGE}@{keys_of_stage.get(pair)}")
        if not isinstance(entry, dict) or not isinstance(entry.get("params"), dict):
            continue
        made = (entry.get("outs") or {}).get(dvcyaml.metrics_path(*pair))
        if metrics_md5 is not None and made is not None and metrics_md5.get(pair) != made:
            continue
        recorded = entry["params"]
        changes = []
        for key, old in recorded.items():
            node = current
            for part in str(key).split("."):
                node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
            if node is _MISSING or node != old:
                now = "missing" if node is _MISSING else json.dumps(node, ensure_ascii=False, default=str)
                changes.append(f"{key}: recorded {json.dumps(old, ensure_ascii=False, default=str)}, now {now}")
        if changes:
            found[pair] = changes
    return found
