"""What an eval run's examples become around the runner: prompts before, verdicts after.

From the eval params (``eval:`` with the eval set's own ``eval.evalsets.<name>``
merged in) this resolves the prompt template, the few-shot block, the chat
template (the GGUF's, a file's, or the server's own for a chat API), and the
scorers; every one is checked and every example rendered before a runner
starts, so a bad template or scorer stops the eval with nothing written.

``record`` is what the result records beyond the params: the md5 of everything
that shaped the prompts (few-shot file and chat template included) and of the
schema file, so a result is reused only when the same text reached the model.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from gitmodel import chattemplate, prompts, scorers
from gitmodel.errors import InvalidPrompt
from gitmodel.runners.base import Example, Prediction

MISSING = "(missing)"


@dataclass
class Preparation:
    """The prompting and scoring of one eval run, resolved and checked."""

    prompting: prompts.Prompting
    scorer: str
    schema_path: Path | None
    number_tolerance: float
    root: Path
    record: dict = field(default_factory=dict)   # the result's `prompting` section ({} when nothing to record)

    @property
    def special(self) -> bool:
        """Whether the rendered prompts hold special tokens as text (a chat template rendered here)."""
        return self.prompting.chat is not None

    def apply(self, examples: Sequence[Example], source: str) -> tuple[list[Example], scorers.Scoring]:
        """The examples as the runner must see them, and their scorers, prepared."""
        rendered = self.prompting.apply(examples, source)
        scoring = scorers.prepare(rendered, self.scorer, root=self.root, schema_path=self.schema_path,
                                  number_tolerance=self.number_tolerance)
        return rendered, scoring


def params_md5(p: dict) -> str | None:
    """The md5 of the prompt settings, recorded in the params (None for the plain ``{input}`` prompt)."""
    if p.get("prompt", prompts.IDENTITY) == prompts.IDENTITY and not p.get("fewshot") \
            and p.get("chat", "none") == "none" and not p.get("system"):
        return None
    blob = json.dumps({k: p.get(k) for k in ("prompt", "fewshot", "chat", "system")}, sort_keys=True)
    return hashlib.md5(blob.encode("utf-8")).hexdigest()


def _chat(root: Path, p: dict, runner: str, model_file: Path | None, model_rel: str | None, where: str):
    """(chat template or None, whether a chat API gets messages instead)."""
    chat, system = p["chat"], p.get("system")
    model_name = model_rel or "the model"
    if chat == "none":
        if system:
            raise InvalidPrompt(f"{where}: eval.system is set but eval.chat is none: a system message needs a "
                                "chat template", hint="set eval.chat: auto (the model's template) or a template "
                                                      "file, or remove eval.system")
        return None, False
    if chat == "auto":
        if runner == "openai":
            return None, True    # the server applies the template it serves the model with
        template = None
        if model_file is not None:
            from gitmodel import gguf

            template = chattemplate.from_gguf(model_file, gguf.read_info(model_file), model_name)
        if template is None and system:
            raise InvalidPrompt(f"{where}: eval.chat is auto but {model_name} has no chat template "
                                f"({chattemplate.TEMPLATE_KEY}), so eval.system cannot be used",
                                hint="name a template file in eval.chat, or remove eval.system")
        return template, False
    path = prompts.repo_file(root, chat, f"{where}: eval.chat")
    if not path.is_file():
        raise InvalidPrompt(f"{where}: eval.chat: the chat template file {chat} does not exist",
                            hint="name a Jinja template file relative to the repository root, or use auto or none")
    template = chattemplate.from_file(path, chat)
    if model_file is not None:
        from gitmodel import gguf

        info = gguf.read_info(model_file)
        texts = {role: (chattemplate.token_text(model_file, info, info.metadata[f"tokenizer.ggml.{role}_token_id"])
                        if isinstance(info.metadata.get(f"tokenizer.ggml.{role}_token_id"), int) else "")
                 for role in ("bos", "eos")}
        template = chattemplate.ChatTemplate(template.source, chat, texts["bos"], texts["eos"])
    return template, False


def resolve(root: Path, p: dict, *, runner: str, model_file: Path | None, model_rel: str | None,
            max_line_bytes: int, where: str = "params.yaml") -> Preparation:
    """The prompting and scoring the eval params ``p`` ask for, every file read and checked."""
    root = Path(root)
    template = prompts.PromptTemplate.parse(p["prompt"], f"{where}: eval.prompt")
    chat, messages_only = _chat(root, p, runner, model_file, model_rel, where)
    fewshot = ""
    record: dict = {}
    if p.get("fewshot"):
        shots = prompts.read_fewshot(root, p["fewshot"], f"{where}: eval.fewshot", max_line_bytes)
        fewshot = prompts.fewshot_block(template, shots, p["fewshot"], str(p["label_prefix"]))
        record["fewshot_md5"] = prompts.file_md5(prompts.repo_file(root, p["fewshot"], "eval.fewshot"))
    prompting = prompts.Prompting(template, fewshot, chat, p.get("system"), messages_only)
    if chat is not None:
        record["chat_template_md5"] = chat.md5
    schema_path = None
    if p.get("json_schema"):
        schema_path = prompts.repo_file(root, p["json_schema"], f"{where}: eval.json_schema")
        if schema_path.is_file():
            record["json_schema_md5"] = prompts.file_md5(schema_path)
    if not prompting.is_identity:
        record = {"template_md5": prompting.md5(), **record}
    return Preparation(prompting, p["scorer"], schema_path, p["number_tolerance"], root, record)


def slice_warnings(examples: Sequence[Example], slices: Sequence[str]) -> list[str]:
    """One line per slice field missing on some examples: they are counted under ``(missing)``."""
    out = []
    for name in slices:
        missing = [e.id for e in examples if name not in (e.fields or {})]
        if missing:
            shown = ", ".join(map(repr, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            out.append(f"slice field {name!r} is missing on {len(missing)} of {len(examples)} examples "
                       f"({shown}): they are counted as {MISSING}")
    return out


def score(scoring: scorers.Scoring, examples: Sequence[Example], predictions: Sequence[Prediction]) -> dict:
    """Judge the generations; the result's `scoring` section ({} without generations)."""
    scoring.score(examples, predictions)
    counts = scoring.counts(examples)
    return {"scorer": scoring.default, "by_scorer": counts} if counts else {}
