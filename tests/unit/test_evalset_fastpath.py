"""The fast path of eval set validation never accepts what the JSON Schema refuses."""
from __future__ import annotations

import itertools

import jsonschema

from gitmodel import evalsets
from gitmodel.schemas import load

VALUES = [None, "", "x", 0, 1.5, True, [], ["a"], ["a", "b"], ["a", "a"], ["a", ""], ["a", 1], {"k": "v"}]


def test_fast_path_agrees_with_the_schema():
    validator = jsonschema.Draft202012Validator(load("evalset"))
    checked = 0
    for id_, input_, expected, labels, category in itertools.product(
            ["r1", "", 7, None], ["text", "", 3, None], VALUES[:6], VALUES, ["food", "", 2, None]):
        obj = {k: v for k, v in (("id", id_), ("input", input_), ("expected", expected), ("labels", labels),
                                 ("category", category)) if v is not None}
        if evalsets._plainly_valid(obj):
            assert validator.is_valid(obj), obj
            checked += 1
    assert checked > 20
