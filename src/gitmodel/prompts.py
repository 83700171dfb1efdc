"""Prompt templates: what a model is given for each example, as it is served.

``eval.prompt`` is text with ``{field}`` placeholders, filled from the example's
line (``{input}``, ``{context}``, any field); ``{{`` and ``}}`` are literal braces.
A placeholder is a plain field name: no attribute, index or format spec, so a
template can only read the example's own values. An optional few-shot block
(``eval.fewshot``, a JSONL file of examples with ``expected``) comes first, each
shot rendered with the same template and followed by its answer. With a chat
template (:mod:`gitmodel.chattemplate`) the rendered prompt becomes the user turn.

Everything is rendered before a runner starts, so a bad template stops the eval
with nothing written, naming the template, the field and the example.
"""
from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from gitmodel.errors import InvalidPrompt
from gitmodel.runners.base import Example

IDENTITY = "{input}"
FEWSHOT_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class PromptTemplate:
    """A parsed prompt template; ``where`` names it in errors (``params.yaml: eval.prompt``)."""

    text: str
    where: str
    parts: tuple[tuple[str, str | None], ...]   # (literal text, field name or None)

    @classmethod
    def parse(cls, text: str, where: str) -> PromptTemplate:
        if not isinstance(text, str):
            raise InvalidPrompt(f"{where} must be text, got {text!r}", hint='e.g. prompt: "Review: {input}\\nSentiment:"')
        parts = []
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as e:
            raise InvalidPrompt(f"{where}: {e} in {text!r}",
                                hint="write a literal brace as {{ or }}; a placeholder is {field}") from None
        for literal, name, spec, conversion in parsed:
            if name is not None and (not name.isidentifier() or spec or conversion):
                shown = "{" + name + ("!" + conversion if conversion else "") + (":" + spec if spec else "") + "}"
                raise InvalidPrompt(f"{where}: placeholder {shown} is not a field name",
                                    hint="a placeholder names one field of the example, e.g. {input} or {context}; "
                                         "write a literal brace as {{ or }}")
            parts.append((literal, name))
        return cls(text, where, tuple(parts))

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for _, name in self.parts if name is not None))

    @property
    def is_identity(self) -> bool:
        return self.text == IDENTITY

    def render(self, values: Mapping[str, Any], what: str) -> str:
        """The template filled from ``values``; ``what`` names the example in errors."""
        out = []
        for literal, name in self.parts:
            out.append(literal)
            if name is None:
                continue
            if name not in values:
                known = ", ".join(sorted(values)) or "none"
                raise InvalidPrompt(f"{self.where}: {what} has no field {name!r} for the placeholder {{{name}}} "
                                    f"(its fields: {known})",
                                    hint=f"add {name!r} to every line of the eval set, or fix the template")
            value = values[name]
            out.append(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        return "".join(out)


def _described(example: Example, source: str) -> str:
    line = f":{example.line}" if example.line else ""
    return f"example {example.id!r} ({source}{line})"


def fewshot_block(template: PromptTemplate, shots: Sequence[Example], source: str, joiner: str) -> str:
    """Each shot rendered with the template, then ``joiner`` and its answer; the block ends ready for the query."""
    rendered = []
    for shot in shots:
        if shot.expected is None:
            raise InvalidPrompt(f"{source}:{shot.line}: few-shot example {shot.id!r} has no 'expected' answer",
                                hint="every few-shot example shows its answer: add 'expected'")
        rendered.append(template.render(shot.fields or {"input": shot.input}, _described(shot, source))
                        + joiner + shot.expected)
    return "".join(r + FEWSHOT_SEPARATOR for r in rendered)


@dataclass(frozen=True)
class Prompting:
    """How the examples of one eval run become what the runner sees."""

    template: PromptTemplate
    fewshot: str = ""                 # the rendered few-shot block ("" without one)
    chat: Any = None                  # a chattemplate.ChatTemplate, or None
    system: str | None = None
    messages_only: bool = False       # a chat API applies its own template: send messages, render none

    @property
    def is_identity(self) -> bool:
        return self.template.is_identity and not self.fewshot and self.chat is None and not self.messages_only

    def apply(self, examples: Sequence[Example], source: str) -> list[Example]:
        """The examples with ``prompt`` (and ``messages``) set; unchanged when the prompt is the input."""
        if self.is_identity:
            return list(examples)
        out = []
        for example in examples:
            values = example.fields or {"input": example.input}
            user = self.fewshot + self.template.render(values, _described(example, source))
            messages = ([{"role": "system", "content": self.system}] if self.system else []) + \
                [{"role": "user", "content": user}]
            if self.chat is not None:
                prompt = self.chat.render(messages)
            else:
                prompt = user
            # Messages go to a chat API, which applies its own template; a template rendered here is the prompt.
            out.append(replace(example, prompt=prompt, messages=tuple(messages) if self.messages_only else None))
        return out

    def md5(self) -> str:
        """The md5 of everything that shapes a prompt: template, few-shot block, chat template and system."""
        chat = None if self.chat is None else self.chat.md5
        blob = json.dumps({"prompt": self.template.text, "fewshot": self.fewshot, "chat": chat,
                           "messages": self.messages_only, "system": self.system}, sort_keys=True)
        return hashlib.md5(blob.encode("utf-8")).hexdigest()


def read_fewshot(root: Path, rel: str, where: str, max_line_bytes: int) -> list[Example]:
    """The few-shot examples of ``rel`` (a JSONL file of the repository, eval-set format)."""
    from gitmodel import evalsets
    from gitmodel.errors import InvalidEvalSet

    path = repo_file(root, rel, where)
    if not path.is_file():
        raise InvalidPrompt(f"{where}: few-shot file {rel} not found",
                            hint="name a JSONL file of examples (id, input, expected) relative to the repository root")
    try:
        return evalsets.load(path, max_line_bytes=max_line_bytes)
    except InvalidEvalSet as e:
        raise InvalidPrompt(f"{where}: {e.message}", hint=e.hint) from None


def repo_file(root: Path, rel: str, where: str) -> Path:
    """``rel`` (a params.yaml path, relative to the repository root), refused when it leads outside."""
    if not isinstance(rel, str) or not rel:
        raise InvalidPrompt(f"{where} must be a path relative to the repository root, got {rel!r}")
    root = Path(root).resolve()
    path = (root / rel).resolve()
    if root != path and root not in path.parents:
        raise InvalidPrompt(f"{where}: {rel} is outside the repository",
                            hint="keep the file in the repository, so that git holds it beside the results")
    return path


def file_md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()
