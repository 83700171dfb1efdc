"""The rendering kit's arithmetic for people: shares printed as whole percents."""
from __future__ import annotations

from gitmodel.cli.render import whole_percents


def test_whole_percents_add_up_as_the_shares_do():
    assert f"{0.545:.0%} + {0.455:.0%}" == "55% + 46%"          # rounded one by one: 101 %
    assert whole_percents({"positive": 0.545, "negative": 0.455}) == {"positive": 55, "negative": 45}
    assert sum(whole_percents({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}).values()) == 100
    assert whole_percents({"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}) == dict.fromkeys("abcd", 25)


def test_shares_of_part_of_the_records_keep_their_own_total():
    assert whole_percents({"no": 0.5}) == {"no": 50}
    assert whole_percents({}) == {}
