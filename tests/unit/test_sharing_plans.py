"""The decisions of push and gc, on plain data: what moves, what is withheld, what is removed."""
from __future__ import annotations

from gitmodel.gc import plan_removals
from gitmodel.holdings import Holdings, Use
from gitmodel.sharing import plan_push

A, B, E = "a" * 32, "b" * 32, "e" * 32


def held() -> Holdings:
    return Holdings(
        uses=[Use("m", "m@v1.0.0", "c1", "models/m.gguf", A), Use("m", "m@v1.0.0", "c1", "evalsets/s.jsonl", E),
              Use("m", "m@v2.0.0", "c2", "models/m.gguf", B), Use("m", "m#prod", "c2", "models/m.gguf", B),
              Use("m", "m@v2.0.0", "c2", "evalsets/s.jsonl", E)],
        tags={"m@v1.0.0": "c1", "m@v2.0.0": "c2", "m#prod#1": "c2"})


LOCAL = {"m@v1.0.0": "t1", "m@v2.0.0": "t2", "m#prod#1": "t3"}


def test_objects_the_remote_lacks_are_pushed_and_tags_follow():
    plan = plan_push(held(), LOCAL, {}, on_remote={E}, cached={A: 1, B: 2, E: 3})
    assert [o.md5 for o in plan.to_push] == [A, B]
    assert [o.md5 for o in plan.present] == [E]
    assert plan.to_push[1].holders == ["m@v2.0.0", "m#prod"]
    assert plan.tags_to_push == ["m#prod#1", "m@v1.0.0", "m@v2.0.0"] and not plan.tag_conflicts


def test_a_release_whose_weights_are_nowhere_holds_back_its_tags_only():
    plan = plan_push(held(), LOCAL, {}, on_remote=set(), cached={A: 1, E: 3})
    assert [(o.md5, o.reason) for o in plan.missing] == [(B, "not in the local DVC cache")]
    assert plan.tags_withheld == ["m#prod#1", "m@v2.0.0"]
    assert plan.tags_to_push == ["m@v1.0.0"]


def test_tags_already_there_are_skipped_and_other_targets_are_conflicts():
    plan = plan_push(held(), LOCAL, {"m@v1.0.0": "t1", "m@v2.0.0": "elsewhere"}, on_remote={A, B, E}, cached={})
    assert plan.tags_present == ["m@v1.0.0"]
    assert plan.tag_conflicts == ["m@v2.0.0"]
    assert plan.tags_to_push == ["m#prod#1"] and not plan.to_push and not plan.missing


def test_gc_removes_only_what_nothing_keeps_largest_first():
    removals = plan_removals({A: 10, B: 30, E: 20, "f" * 32: None}, keep={A}, where="cache")
    assert [(r.md5, r.size) for r in removals] == [(B, 30), (E, 20), ("f" * 32, None)]
    assert plan_removals({A: 1}, keep={A}, where="remote") == []
