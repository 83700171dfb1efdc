"""YAML errors name the line and what is wrong, without the parser's internals."""
from __future__ import annotations

import pytest

from gitmodel import params
from gitmodel.errors import InvalidParams


def test_a_duplicated_section_of_params_yaml_names_the_key_and_its_line(tmp_path):
    (tmp_path / "params.yaml").write_text("eval:\n  seed: 0\ngate:\n  quality_tolerance: 0\ngate:\n  accept: []\n")
    with pytest.raises(InvalidParams) as raised:
        params.read(tmp_path)
    assert str(raised.value) == (f"{tmp_path / 'params.yaml'}: not valid YAML: line 5, column 1: duplicate key "
                                 '"gate" (a key may appear once in a mapping: merge the two)')


def test_a_syntax_error_names_its_line_and_where_the_construct_started(tmp_path):
    (tmp_path / "params.yaml").write_text("eval:\n  refusal_patterns: [\"sorry\"\n")
    with pytest.raises(InvalidParams) as raised:
        params.read(tmp_path)
    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'params.yaml'}: not valid YAML: line 3, column 1: ")
    assert "started at line 2" in message and "suppress" not in message and "\n" not in message
