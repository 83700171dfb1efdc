"""Chat templates: the conversation a chat model is served with, rendered as its GGUF says.

A GGUF's ``tokenizer.chat_template`` is Jinja code inside a downloaded file, so it
is untrusted: it renders in Jinja's immutable sandbox (no attribute of a Python
internal, no mutation of what it is given), the hole CVE-2024-34359 was about.
A template that reaches outside the sandbox, fails to parse or raises is an error
naming the model (or the template file), never a silently different prompt.

The conversation is an optional system message and the rendered prompt as the user
turn, then the generation prompt (``add_generation_prompt``): what follows is the
model's answer, so a classification's labels are scored right after it.
"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

from gitmodel.errors import InvalidPrompt

TEMPLATE_KEY = "tokenizer.chat_template"


class ChatTemplateError(InvalidPrompt):
    """A chat template that cannot render, or that tried to leave the sandbox."""


@dataclass(frozen=True)
class ChatTemplate:
    """A chat template and the special tokens it may name; ``where`` names its origin in errors."""

    source: str
    where: str
    bos_token: str = ""
    eos_token: str = ""

    @property
    def md5(self) -> str:
        return hashlib.md5(self.source.encode("utf-8")).hexdigest()

    @cached_property
    def _template(self):
        from jinja2 import TemplateError
        from jinja2.exceptions import SecurityError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        class Sandbox(ImmutableSandboxedEnvironment):
            def unsafe_undefined(self, obj, attribute):
                # Jinja renders an unsafe attribute as empty text; a template that reaches for one is refused.
                raise SecurityError(f"access to attribute {attribute!r} of a {type(obj).__name__} is unsafe")

        def raise_exception(message):
            raise TemplateError(message)

        def strftime_now(fmt):   # templates that print today's date; fixed, so prompts reproduce
            return "26 Jul 2024" if "%d %b %Y" in fmt else ""

        # trim_blocks/lstrip_blocks: how the templates are written to be rendered (transformers does the same)
        env = Sandbox(trim_blocks=True, lstrip_blocks=True)
        env.globals.update(raise_exception=raise_exception, strftime_now=strftime_now)
        try:
            return env.from_string(self.source)
        except TemplateError as e:
            raise ChatTemplateError(f"{self.where}: the chat template does not parse: {e}",
                                    hint="fix the template, or set eval.chat: none") from None

    def render(self, messages: Sequence[dict]) -> str:
        from jinja2 import TemplateError
        from jinja2.exceptions import SecurityError

        template = self._template
        try:
            return template.render(messages=list(messages), add_generation_prompt=True,
                                   bos_token=self.bos_token, eos_token=self.eos_token)
        except SecurityError as e:
            raise ChatTemplateError(f"{self.where}: the chat template tried to reach outside its sandbox: {e}",
                                    hint="this template runs code a chat template has no need for: do not "
                                         "trust the file; set eval.chat to a template you have read") from None
        except (TemplateError, Exception) as e:   # a template is code: any failure of it is the template's
            raise ChatTemplateError(f"{self.where}: the chat template failed to render: "
                                    f"{type(e).__name__}: {e}",
                                    hint="check the template with a system message and one user turn, "
                                         "or set eval.chat: none") from None


def from_gguf(path: Path, info, where: str) -> ChatTemplate | None:
    """The chat template a GGUF carries (None without one), with its BOS and EOS token texts."""
    from gitmodel.gguf import StringSummary

    source = info.metadata.get(TEMPLATE_KEY)
    if source is None:
        return None
    if isinstance(source, StringSummary) or not isinstance(source, str):
        raise ChatTemplateError(f"{where}: {TEMPLATE_KEY} is not a readable text")
    texts = {}
    for role in ("bos", "eos"):
        token_id = info.metadata.get(f"tokenizer.ggml.{role}_token_id")
        texts[role] = token_text(path, info, token_id) if isinstance(token_id, int) else ""
    return ChatTemplate(source, f"{where}: {TEMPLATE_KEY}", texts["bos"], texts["eos"])


def from_file(path: Path, where: str) -> ChatTemplate:
    try:
        source = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ChatTemplateError(f"{where}: cannot read the chat template {path}: {e}",
                                hint="name a Jinja template file relative to the repository root, "
                                     "or set eval.chat to auto or none") from None
    return ChatTemplate(source, str(where))


def token_text(path: Path, info, token_id: int) -> str:
    """The text of one token of the vocabulary (``tokenizer.ggml.tokens``), read from the file.

    The header reader keeps long arrays as a summary and records where they are; the
    strings before ``token_id`` are walked by their lengths, within the array's bounds.
    """
    span = info.value_spans.get("tokenizer.ggml.tokens")
    if span is None or token_id < 0:
        return ""
    _, start, end = span
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)   # the vocabulary: a few MB at most, walked in memory
    _element_type, length = struct.unpack_from("<IQ", data, 0)
    if token_id >= length:
        return ""
    pos = 12
    for _ in range(token_id):
        (n,) = struct.unpack_from("<Q", data, pos)
        pos += 8 + n
    (n,) = struct.unpack_from("<Q", data, pos)
    return data[pos + 8:pos + 8 + n].decode("utf-8", "replace")
