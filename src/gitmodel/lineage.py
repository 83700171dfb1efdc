"""Lineage of a checkpoint: how it was made. Parsing and validation only."""
from __future__ import annotations

import re
from pathlib import Path

from gitmodel.errors import GitModelError, InvalidParams

_DURATION_RE = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*d)?\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m)?\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$")


def parse_duration(text: str) -> int:
    """'3h', '45m', '5400s', '1h30m', '2d' or plain seconds -> whole seconds."""
    text = str(text).strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return round(float(text))
    m = _DURATION_RE.match(text)
    if not text or not m or not any(m.groups()):
        raise InvalidParams(f"invalid --training-duration {text!r}: use e.g. 3h, 45m, 5400s or 1h30m")
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return round(d * 86400 + h * 3600 + mi * 60 + s)


def _typed(value: str):
    """'2e-5' -> 2e-05, '3' -> 3, 'true' -> True, anything else stays a string (YAML rules)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        parsed = YAML(typ="safe", pure=True).load(value)
    except YAMLError:
        return value
    if isinstance(parsed, (int, float, bool, str)) and parsed is not None:
        # YAML 1.2 reads "2e-5" as a string; a float is what was meant.
        if isinstance(parsed, str):
            try:
                return float(parsed) if re.fullmatch(r"[-+]?\d*\.?\d+[eE][-+]?\d+", parsed) else parsed
            except ValueError:
                return parsed
        return parsed
    return value


def parse_params(pairs: tuple[str, ...] | list[str], params_file: Path | None) -> dict:
    """Hyperparameters from ``--params-file`` (YAML mapping), then ``--param k=v`` over it."""
    params: dict = {}
    if params_file is not None:
        from ruamel.yaml import YAML, YAMLError

        from gitmodel.yamlio import describe

        path = Path(params_file)
        if not path.is_file():
            raise InvalidParams(f"--params-file {path}: no such file")
        try:
            data = YAML(typ="safe", pure=True).load(path.read_text("utf-8"))
        except (YAMLError, UnicodeDecodeError) as e:
            raise InvalidParams(f"--params-file {path}: not valid YAML: {describe(e)}") from None
        if not isinstance(data, dict):
            raise InvalidParams(f"--params-file {path}: expected a mapping of hyperparameters (e.g. `lr: 2e-5`)")
        params.update(data)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidParams(f"invalid --param {pair!r}: expected KEY=VALUE, e.g. --param lr=2e-5")
        params[key.strip()] = _typed(value.strip())
    return params


def dataset_entry(root: Path, dataset: Path, md5_of) -> dict:
    """{"path", "md5"} of a training dataset: from its .dvc file when DVC tracks it, else hashed."""
    from gitmodel import store

    dataset = Path(dataset)
    absolute = dataset if dataset.is_absolute() else Path.cwd() / dataset
    try:
        shown = absolute.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        shown = str(absolute.resolve())
    dvc_file = Path(str(absolute) + ".dvc")
    if dvc_file.is_file():
        out = store.parse_dvc_file(dvc_file.read_text("utf-8"), dvc_file)
        if out is None or not out.md5:
            raise GitModelError(f"--dataset {dataset}: {dvc_file} records no md5",
                                hint=f"run `dvc add {dataset}` again")
        return {"path": shown, "md5": out.md5, "tracked_by": "dvc"}
    if absolute.is_dir():
        raise GitModelError(f"--dataset {dataset} is a folder that DVC does not track",
                            hint=f"run `dvc add {dataset}` first, so it has an md5")
    if not absolute.is_file():
        raise GitModelError(f"--dataset {dataset}: no such file")
    return {"path": shown, "md5": md5_of(absolute)}
