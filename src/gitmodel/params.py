"""``params.yaml``: the settings git-model reads, with documented defaults.

Each eval pair (model m, eval set e) runs with ``eval`` merged with m's own
settings (``eval.models.<m>``), then e's (``eval.evalsets.<e>``): the eval set's
are the most specific, since they say how its examples are prompted and scored.
``dvc repro`` tracks exactly those keys per pair (dvcyaml.stage_params).
"""
from __future__ import annotations

from pathlib import Path

from gitmodel.errors import InvalidParams

PARAMS_FILE = "params.yaml"

# Written by `git model init`; each default documented where the user edits it.
PARAMS_TEMPLATE = """\
# git-model settings. `dvc repro` re-runs the eval stage when `eval:` changes.
eval:
  runner: llama          # llama (llama.cpp in-process) | openai (any OpenAI-compatible URL) | python (module:function)
  temperature: 0         # generation is greedy: the same checkpoint gives the same outputs
  seed: 0                # sampling seed, recorded with every result
  max_tokens: 64         # generation length cap per example
  n_ctx: 2048            # context window the model is loaded with; longer inputs are refused
  n_threads: 1           # llama.cpp threads (0: every core); outputs are the same for any count
  n_gpu_layers: 0        # layers offloaded to a GPU when llama.cpp was built with one
  label_prefix: " "      # text between an input and a label when the label is scored
  max_line_bytes: 1048576  # eval set lines longer than this are refused (1 MiB)
  refusal_patterns: []   # extra regexes counted as refusals (case-insensitive), on top of the built-in ones
  prompt: "{input}"      # what the model is given: {input} and any other field of an example line, e.g.
                         # "Review: {input}\\nSentiment:"; {{ and }} are literal braces
  fewshot: null          # a JSONL file of examples (id, input, expected) shown first, each through the prompt
  chat: none             # none | auto (the chat template inside the GGUF, when it has one) | a template file
  system: null           # the system message of the conversation (needs a chat template)
  stop: []               # a generation ends before the first of these texts, e.g. ["\\n"]
  scorer: exact          # exact | contains | regex | json | json_schema | number | python:module:function
  json_schema: null      # the JSON Schema file the json_schema scorer validates outputs against
  number_tolerance: 0.000001  # the number scorer: |first number of the output - expected| allowed
  slices: []             # example fields to slice accuracy and false-positive rates by, e.g. [region]
  min_slice: 20          # slices with fewer examples are reported with their n, left out of the bias gaps
  parallel: 1            # llama runner: generations decoded together in one batch, e.g. 8 or 16 for a generation
                         # eval set (2-3x the tokens/s on a CPU); recorded: the batch shape may move floats
  models: {}             # per model overrides of the same keys as evalsets, and n_ctx, e.g.
                         #   chat: {chat: auto, n_ctx: 4096, max_tokens: 256}
  evalsets: {}           # per eval set overrides of prompt, fewshot, chat, system, stop, scorer, json_schema,
                         # number_tolerance, slices, min_slice, label_prefix, max_tokens, parallel, e.g.
                         #   support: {prompt: "Q: {input}\\nA:", stop: ["\\n"], scorer: contains}
                         # a pair (model m, eval set e) runs with eval < models.m < evalsets.e
  openai:
    concurrency: 4       # requests in flight
    timeout: 30          # seconds per request
    retries: 3           # retries on connection errors, 429 and 5xx, with backoff
    api_key_env: OPENAI_API_KEY   # the key is read from this environment variable, never from a file
    model: null          # model name sent to the server (null: the one it serves, asked at /models)
    scoring: echo        # echo (score the label inside the echoed prompt) | top_logprobs (single-token labels)
    top_logprobs: 20     # k of top_logprobs scoring: a label outside the top k has no score
gate:
  # `git model gate` compares every metric with the baseline (MODEL#prod) by its declared direction.
  # A tolerance is how much worse than the baseline a metric may get and still pass: a number
  # (absolute for quality metrics; relative for timing metrics: 0.5 = 50 % slower), or
  # {absolute: a, relative: r} (allowed = a + r * |baseline|). Keys are metric keys or glob patterns
  # that must match a metric of the results (a misspelt one is an error, never ignored).
  # Defaults declared with the metrics: calibration.ece 0.02 worse, output length within 10 %;
  # confidence.* is monitored, not gated.
  quality_tolerance: 0   # default for quality metrics: deterministic, so meet or beat the baseline exactly
  timing_tolerance: 0.5  # default for timing metrics (relative); tokens_per_second is CPU time, latency wall time
  psi_alert: 0.2         # output_psi.*: the candidate's outputs against the baseline's fail from this PSI
  review_tolerance: 0.25 # review.*: a human review criterion's mean may drop this much (rubric scale)
  review_min_n: 20       # review.*: fewer reviews on either side are reported, not judged
  require_review: false  # true: a candidate whose outputs nobody reviewed fails the gate
  tolerance:             # per metric, e.g. accuracy: 0.01, latency_ms.p95: 0.3, "labels.*.fpr": 0.005
    "latency_ms.*": {relative: 0.5, absolute: 25}  # latency moves under 25 ms are scheduler noise
  # Accepted tradeoffs, reviewed like code: a regression up to max_regression (in the metric's units)
  # passes as "accepted" and every gate report lists it with its rationale (required), e.g.
  #   - {metric: labels.positive.fpr, max_regression: 0.02, rationale: "recall matters more here"}
  accept: []
drift:
  # `git model drift` compares production logs with a baseline, signal by signal, by PSI.
  bins: 10               # quantile bins of the baseline per continuous signal (duplicate edges merged)
  min_samples: 100       # a side with fewer records than this gets its PSI flagged as noisy
  watch: 0.1             # PSI from here: watch (below: stable)
  alert: 0.2             # PSI from here: alert (exit 1)
  fields: []             # input fields counted as categorical signals, besides `category`
  signals: {}            # per signal, other bands, e.g. "output.confidence": {watch: 0.15, alert: 0.3}
retrain:
  # `git model retrain-check` says "retrain" when one of these rules fires, each with its figure.
  input_psi: 0.2         # an input signal drifts from this PSI
  data_growth: 0.2       # the labelled dataset grew by this share since the prod checkpoint was trained
  review_floor: 3.0      # human review: a criterion's mean below this
  category_floor: 2.5    # human review: one category's mean below this, on any criterion ...
  min_category_reviews: 5  # ... over at least this many reviews of it
  events: []             # domain shifts, e.g. - {date: 2026-11-02, what: "new product line launched"}
tiers:
  # models.<name>.risk picks one: the accuracy drop (absolute, below the launch metrics) that calls for
  # retraining, and how often the scheduled monitor runs
  high: {accuracy_drop: 0.03, schedule: weekly}
  standard: {accuracy_drop: 0.05, schedule: monthly}
models: {}               # per model, e.g. chat: {risk: high}; a model not listed is standard
review:
  # `git model sample` writes this rubric into every sample; `git model review import` checks scores against it
  rubric:
    criteria: [correct, helpful, safe]
    scale: [1, 5]        # lowest and highest score
    guidance:
      correct: "5: right and complete; 1: wrong"
      helpful: "5: answers what was asked; 1: ignores it"
      safe: "5: nothing harmful or leaked; 1: harmful"
"""

EVAL_DEFAULTS = {
    "runner": "llama",
    "temperature": 0,
    "seed": 0,
    "max_tokens": 64,
    "n_ctx": 2048,
    "n_threads": 1,
    "n_gpu_layers": 0,
    "label_prefix": " ",
    "max_line_bytes": 1048576,
    "refusal_patterns": [],
    "prompt": "{input}",
    "fewshot": None,
    "chat": "none",
    "system": None,
    "stop": [],
    "scorer": "exact",
    "json_schema": None,
    "number_tolerance": 1e-6,
    "slices": [],
    "min_slice": 20,
    "parallel": 1,
    "models": {},
    "evalsets": {},
    "openai": {"concurrency": 4, "timeout": 30, "retries": 3, "api_key_env": "OPENAI_API_KEY",
               "model": None, "scoring": "echo", "top_logprobs": 20},
}

# The keys that change what a run computes; they are recorded in the metrics
# file, and a cached result is reused (or called current) only when they are equal.
RESULT_KEYS = ("runner", "temperature", "seed", "max_tokens", "n_ctx", "n_threads", "n_gpu_layers",
               "label_prefix", "refusal_patterns", "prompt", "fewshot", "chat", "system", "stop", "scorer",
               "json_schema", "number_tolerance", "slices", "min_slice", "parallel")
# The settings one eval set may set for itself under `eval.evalsets.<name>` (its prompt, its scoring).
PER_EVALSET_KEYS = ("prompt", "fewshot", "chat", "system", "stop", "scorer", "json_schema", "number_tolerance",
                    "slices", "min_slice", "label_prefix", "max_tokens", "parallel")
# The settings one model may set for itself under `eval.models.<name>`: an eval set's, and the context
# window it is loaded with (the model's own, whatever it is evaluated on).
PER_MODEL_KEYS = PER_EVALSET_KEYS + ("n_ctx",)
# The sections of `eval` that hold overrides: (section, the keys it may set, what one entry is called).
OVERRIDES = (("models", PER_MODEL_KEYS, "model"), ("evalsets", PER_EVALSET_KEYS, "eval set"))
# The same for the openai runner's own settings, recorded as `openai:` with its results only.
# Concurrency changes timings, not outputs: it is recorded in the timing conditions.
OPENAI_RESULT_KEYS = ("model", "scoring", "top_logprobs")


def read(root: Path) -> dict:
    """The whole params.yaml (empty when missing)."""
    path = Path(root) / PARAMS_FILE
    if not path.is_file():
        return {}
    from ruamel.yaml import YAML, YAMLError

    from gitmodel.yamlio import describe

    try:
        data = YAML(typ="safe", pure=True).load(path.read_text("utf-8"))
    except YAMLError as e:
        raise InvalidParams(f"{path}: not valid YAML: {describe(e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidParams(f"{path}: expected a mapping at the top level")
    return data


def _merge(defaults: dict, given: dict, where: str, path: Path) -> dict:
    out = dict(defaults)
    for key, value in given.items():
        if key in defaults and isinstance(defaults[key], dict):
            if not isinstance(value, dict):
                raise InvalidParams(f"{path}: {where}.{key} must be a mapping")
            out[key] = _merge(defaults[key], value, f"{where}.{key}", path)
        else:
            if key in defaults and defaults[key] is not None and not isinstance(defaults[key], (list, dict)):
                want = type(defaults[key])
                ok = isinstance(value, want) or (want in (int, float) and isinstance(value, (int, float))
                                                 and not isinstance(value, bool))
                if not ok:
                    raise InvalidParams(
                        f"{path}: {where}.{key} must be {want.__name__}, got {value!r}",
                        hint=f"fix {where}.{key} in {PARAMS_FILE} (default: {defaults[key]!r})")
            out[key] = value
    return out


def eval_params(root: Path, evalset: str | None = None, *, model: str | None = None) -> dict:
    """The ``eval:`` section merged over the defaults, type-checked; with ``model`` and/or ``evalset``,
    their overrides merged over it (:func:`for_pair`). A non-empty ``eval.models.<name>`` for a model
    dvc.yaml does not track is refused: a misspelt name would leave its model on the shared settings."""
    section = read(root).get("eval") or {}
    path = Path(root) / PARAMS_FILE
    if not isinstance(section, dict):
        raise InvalidParams(f"{path}: eval must be a mapping")
    merged = _merge(EVAL_DEFAULTS, section, "eval", path)
    for name, allowed, what in OVERRIDES:
        _check_overrides(merged[name], name, allowed, what, path)
    _check_models_tracked(root, merged["models"], path)
    merged = for_pair(merged, model, evalset, path)
    _check_prompting(merged, path, model, evalset)
    if merged["n_threads"] < 0:
        raise InvalidParams(f"{path}: eval.n_threads must be 0 (every core) or more, got {merged['n_threads']}",
                            hint=f"fix eval.n_threads in {PARAMS_FILE} (default: 1)")
    for key in ("max_line_bytes", "max_tokens", "n_ctx", "parallel"):
        if merged[key] < 1:
            where = _where(merged, key, model, evalset)
            raise InvalidParams(f"{path}: {where} must be at least 1, got {merged[key]}",
                                hint=f"fix {where} in {PARAMS_FILE} (default: {EVAL_DEFAULTS[key]})")
    k = merged["openai"]["top_logprobs"]
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidParams(f"{Path(root) / PARAMS_FILE}: eval.openai.top_logprobs must be an integer of at least 1, "
                            f"got {k!r}", hint=f"fix eval.openai.top_logprobs in {PARAMS_FILE} (default: 20)")
    return merged


def _check_overrides(overrides, section: str, allowed: tuple, what: str, path: Path) -> None:
    from gitmodel.known import suggestion

    if not isinstance(overrides, dict):
        raise InvalidParams(f"{path}: eval.{section} must be a mapping of {what} names to settings",
                            hint=f"e.g. {section}: {{NAME: {{max_tokens: 128}}}}")
    for name, given in overrides.items():
        where = f"eval.{section}.{name}"
        if not isinstance(given, dict):
            raise InvalidParams(f"{path}: {where} must be a mapping of settings, got {given!r}",
                                hint=f"e.g. {where}: {{max_tokens: 128}} (per {what}: {', '.join(allowed)})")
        unknown = [key for key in given if key not in allowed]
        if unknown:
            raise InvalidParams(f"{path}: {where}.{unknown[0]} cannot be set per {what}"
                                f"{suggestion(str(unknown[0]), allowed)}",
                                hint=f"per {what}: {', '.join(allowed)}")


def _check_models_tracked(root: Path, overrides: dict, path: Path) -> None:
    named = [name for name, given in overrides.items() if given]
    if not named or not (Path(root) / "dvc.yaml").is_file():
        return
    from gitmodel import dvcyaml, pairs
    from gitmodel.errors import ModelNotFound
    from gitmodel.known import did_you_mean

    known = pairs.models_known(root)
    for name in named:
        if name not in known:
            raise ModelNotFound(f"{path}: eval.models.{name} sets the settings of '{name}', a model dvc.yaml "
                                f"does not track: {did_you_mean(str(name), known)}",
                                hint=f"fix the name, remove eval.models.{name} from {PARAMS_FILE}, or track the "
                                     f"model with `git model add {dvcyaml.model_path(str(name))}`")


def for_pair(merged: dict, model: str | None, evalset: str | None, path: Path | str = PARAMS_FILE) -> dict:
    """``merged`` (an ``eval_params`` result) with the model's ``eval.models.<model>`` over it, then the
    eval set's ``eval.evalsets.<evalset>`` (the most specific): the settings the pair runs with. The one
    place overrides are merged; None for either leaves its overrides out."""
    for section, allowed, name in (("models", PER_MODEL_KEYS, model), ("evalsets", PER_EVALSET_KEYS, evalset)):
        given = (merged.get(section) or {}).get(name) if name is not None else None
        if given:
            own = {k: v for k, v in merged.items() if k in allowed}
            merged = dict(merged, **_merge(own, given, f"eval.{section}.{name}", Path(path)))
    return merged


def _where(merged: dict, key: str, model: str | None, evalset: str | None) -> str:
    """The key of params.yaml a merged setting came from (the most specific that sets it)."""
    for section, name in (("evalsets", evalset), ("models", model)):
        if name is not None and key in ((merged.get(section) or {}).get(name) or {}):
            return f"eval.{section}.{name}.{key}"
    return f"eval.{key}"


def _check_prompting(merged: dict, path: Path, model: str | None, evalset: str | None) -> None:
    """The prompting and scoring settings whose type the defaults cannot tell (lists, optional text)."""
    def where(key: str) -> str:
        return _where(merged, key, model, evalset)

    for key, example in (("stop", '["\\n"]'), ("slices", "[region, customer_tier]")):
        value = merged[key]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise InvalidParams(f"{path}: {where(key)} must be a list of non-empty strings, got {value!r}",
                                hint=f"e.g. {key}: {example}")
    for key in ("system", "fewshot", "json_schema"):
        if merged[key] is not None and not isinstance(merged[key], str):
            raise InvalidParams(f"{path}: {where(key)} must be text or null, got {merged[key]!r}")
    if not isinstance(merged["chat"], str) or not merged["chat"]:
        raise InvalidParams(f"{path}: {where('chat')} must be none, auto or a template file, got {merged['chat']!r}")
    if isinstance(merged["min_slice"], bool) or not isinstance(merged["min_slice"], int) or merged["min_slice"] < 1:
        raise InvalidParams(f"{path}: {where('min_slice')} must be an integer of at least 1, "
                            f"got {merged['min_slice']!r}", hint="fix it (default: 20)")


# ----------------------------------------------------------------------------- gate:

# Tolerances every policy starts from; the user's keys in gate.tolerance override them.
BUILTIN_TOLERANCES = {
    # Sub-millisecond timings of a small model jump 10x when another process takes the
    # core (p95 0.3 ms -> 12 ms measured on a busy 2-core machine): a floor of 25 ms
    # keeps such noise from failing a gate, and is nothing next to a real model's latency.
    "latency_ms.*": {"relative": 0.5, "absolute": 25},
}


def gate_policy(root: Path):
    """params.yaml ``gate:`` parsed once into a :class:`gatepolicy.GatePolicy` (the built-in
    tolerances under the user's). Raises InvalidParams naming an unknown setting or key and
    the closest valid one; :meth:`GatePolicy.check_names` then checks the metric names
    against the results being gated."""
    from gitmodel.gatepolicy import GatePolicy

    section = read(root).get("gate")
    return GatePolicy.parse(section, BUILTIN_TOLERANCES, where=f"{Path(root) / PARAMS_FILE}: gate")


# ----------------------------------------------------------------------------- drift:, retrain:, tiers:, review:

DRIFT_DEFAULTS = {"bins": 10, "min_samples": 100, "watch": 0.1, "alert": 0.2, "fields": [], "signals": {}}
RETRAIN_DEFAULTS = {"input_psi": 0.2, "data_growth": 0.2, "review_floor": 3.0, "category_floor": 2.5,
                    "min_category_reviews": 5, "events": []}
TIER_DEFAULTS = {"high": {"accuracy_drop": 0.03, "schedule": "weekly"},
                 "standard": {"accuracy_drop": 0.05, "schedule": "monthly"}}
RISKS = ("high", "standard")
SCHEDULES = ("weekly", "monthly")


def _section(root: Path, name: str, defaults: dict) -> dict:
    section = read(root).get(name) or {}
    where = Path(root) / PARAMS_FILE
    if not isinstance(section, dict):
        raise InvalidParams(f"{where}: {name} must be a mapping")
    unknown = sorted(set(section) - set(defaults))
    if unknown:
        from gitmodel import known

        raise InvalidParams(f"{where}: {name}.{unknown[0]} is not a {name} setting"
                            + known.suggestion(unknown[0], defaults, n=1),
                            hint=f"{name} settings: {', '.join(defaults)}")
    return _merge(defaults, section, name, where)


def _at_least(value, low: float, where: str, key: str, default) -> None:
    if value < low:
        raise InvalidParams(f"{where}: {key} must be at least {low:g}, got {value}",
                            hint=f"fix {key} in {PARAMS_FILE} (default: {default})")


def drift_params(root: Path) -> dict:
    """``drift:`` over its defaults, checked: bins >= 1, min_samples >= 1, 0 <= watch <= alert, and the
    per-signal bands the same way."""
    where = Path(root) / PARAMS_FILE
    merged = _section(root, "drift", DRIFT_DEFAULTS)
    _at_least(merged["bins"], 1, where, "drift.bins", 10)
    _at_least(merged["min_samples"], 1, where, "drift.min_samples", 100)
    if not isinstance(merged["fields"], list) or not all(isinstance(f, str) and f for f in merged["fields"]):
        raise InvalidParams(f"{where}: drift.fields must be a list of field names, got {merged['fields']!r}")
    bands = {}
    for signal, entry in ({"*": {"watch": merged["watch"], "alert": merged["alert"]}} | merged["signals"]).items():
        if not isinstance(entry, dict) or set(entry) - {"watch", "alert"}:
            raise InvalidParams(f"{where}: drift.signals.{signal} must be a mapping of watch and alert",
                                hint='e.g. "output.confidence": {watch: 0.15, alert: 0.3}')
        watch, alert = entry.get("watch", merged["watch"]), entry.get("alert", merged["alert"])
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in (watch, alert))
        if not ok or watch > alert:
            key = "drift" if signal == "*" else f"drift.signals.{signal}"
            raise InvalidParams(f"{where}: {key}: watch and alert must be numbers with 0 <= watch <= alert, "
                                f"got watch {watch!r}, alert {alert!r}", hint="defaults: watch 0.1, alert 0.2")
        bands[signal] = (float(watch), float(alert))
    merged["bands"] = bands
    return merged


def bands_for(drift: dict, signal: str) -> tuple[float, float]:
    """(watch, alert) of one signal: its own, else the section's."""
    return drift["bands"].get(signal, drift["bands"]["*"])


def retrain_params(root: Path) -> dict:
    """``retrain:`` over its defaults; every event a {date, what} with a real date."""
    from datetime import date

    where = Path(root) / PARAMS_FILE
    merged = _section(root, "retrain", RETRAIN_DEFAULTS)
    for key in ("input_psi", "data_growth", "review_floor", "category_floor"):
        _at_least(merged[key], 0, where, f"retrain.{key}", RETRAIN_DEFAULTS[key])
    _at_least(merged["min_category_reviews"], 1, where, "retrain.min_category_reviews", 5)
    if not isinstance(merged["events"] or [], list):
        raise InvalidParams(f"{where}: retrain.events must be a list of {{date, what}}")
    events = []
    for i, event in enumerate(merged["events"] or []):
        when = event.get("date") if isinstance(event, dict) else None
        if isinstance(when, str):
            try:
                when = date.fromisoformat(when)
            except ValueError:
                when = None
        if not isinstance(event, dict) or not isinstance(when, date) or not str(event.get("what") or "").strip():
            raise InvalidParams(f"{where}: retrain.events[{i}] must be {{date: YYYY-MM-DD, what: \"...\"}}, "
                                f"got {event!r}", hint='e.g. - {date: 2026-11-02, what: "new product line"}')
        events.append({"date": when.isoformat(), "what": str(event["what"]).strip()})
    merged["events"] = events
    return merged


def tier(root: Path, model: str) -> dict:
    """The risk tier of a model (``models.<name>.risk``, default standard) with its accuracy drop and
    monitoring schedule (``tiers:`` over the defaults)."""
    data = read(root)
    where = Path(root) / PARAMS_FILE
    models = data.get("models") or {}
    entry = models.get(model) if isinstance(models, dict) else None
    risk = (entry or {}).get("risk", "standard") if isinstance(entry, dict) or entry is None else entry
    if risk not in RISKS:
        raise InvalidParams(f"{where}: models.{model}.risk must be one of {', '.join(RISKS)}, got {risk!r}")
    tiers = data.get("tiers") or {}
    if not isinstance(tiers, dict) or set(tiers) - set(RISKS):
        raise InvalidParams(f"{where}: tiers must be a mapping of {', '.join(RISKS)}")
    every = {}
    for name in RISKS:        # both tiers checked, whichever this model is in
        merged = _merge(TIER_DEFAULTS[name], tiers.get(name) or {}, f"tiers.{name}", where)
        if merged["schedule"] not in SCHEDULES or not 0 <= merged["accuracy_drop"] <= 1:
            raise InvalidParams(f"{where}: tiers.{name}: schedule must be {' or '.join(SCHEDULES)} and "
                                f"accuracy_drop a fraction, got {merged!r}")
        every[name] = merged
    return {"risk": risk, **every[risk]}


def review_rubric(root: Path) -> dict:
    """``review.rubric``: criteria (names), scale [low, high] and guidance. Raises when it is missing."""
    where = Path(root) / PARAMS_FILE
    section = read(root).get("review") or {}
    rubric = section.get("rubric") if isinstance(section, dict) else None
    hint = "add review.rubric to params.yaml: {criteria: [correct, helpful], scale: [1, 5], guidance: {...}}"
    if rubric is None:
        raise InvalidParams(f"{where}: no review.rubric: a sample needs the rubric its reviewers score against",
                            hint=hint)
    criteria, scale = (rubric.get("criteria"), rubric.get("scale")) if isinstance(rubric, dict) else (None, None)
    if not isinstance(criteria, list) or not criteria or not all(isinstance(c, str) and c for c in criteria) \
            or len(set(criteria)) != len(criteria):
        raise InvalidParams(f"{where}: review.rubric.criteria must be a list of distinct names", hint=hint)
    if not (isinstance(scale, list) and len(scale) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                               for v in scale) and scale[0] < scale[1]):
        raise InvalidParams(f"{where}: review.rubric.scale must be [lowest, highest], e.g. [1, 5]", hint=hint)
    guidance = rubric.get("guidance") or {}
    if not isinstance(guidance, dict):
        raise InvalidParams(f"{where}: review.rubric.guidance must map criteria to text", hint=hint)
    return {"criteria": list(criteria), "scale": list(scale), "guidance": {k: str(v) for k, v in guidance.items()}}
