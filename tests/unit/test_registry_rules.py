"""The pure rules behind stages and rollback, on plain data: GTO's stage holders, what a rollback would lose."""
from __future__ import annotations

from gitmodel.refs import Version
from gitmodel.registry import Release, StageEvent, stage_holders
from gitmodel.rollback_plan import Planned, uncommitted

V1, V2 = Version.parse("v1.0.0"), Version.parse("v2.0.0")
RELEASES = [Release("m", V1, "m@v1.0.0", "c1", 10, order=0), Release("m", V2, "m@v2.0.0", "c2", 11, order=1)]


def event(stage: str, version: Version | None, time: int, unassign: bool = False, commit: str | None = None,
          counter: int = 0) -> StageEvent:
    commit = commit or {V1: "c1", V2: "c2"}.get(version, "c9")
    return StageEvent("m", stage, counter, f"m#{stage}{'!' if unassign else ''}#{counter}", commit, time,
                      unassign=unassign, version=version)


def held(events, releases=RELEASES) -> dict[str, str]:
    return {s: str(e.version) if e.version else e.commit for s, e in stage_holders(events, releases).items()}


def test_the_newest_assignment_holds_the_stage():
    assert held([event("prod", V1, 20), event("prod", V2, 21)]) == {"prod": "v2.0.0"}


def test_unassigning_the_holder_gives_the_stage_back_to_the_previous_one():
    assert held([event("prod", V1, 20), event("prod", V2, 21), event("prod", V2, 22, unassign=True)]) == \
        {"prod": "v1.0.0"}


def test_an_unassignment_wins_a_same_second_tie_and_the_first_registered_version_wins_a_tie_between_versions():
    assert held([event("prod", V1, 20), event("prod", V2, 21), event("prod", V2, 21, unassign=True)]) == \
        {"prod": "v1.0.0"}
    assert held([event("prod", V2, 20), event("prod", V1, 20)]) == {"prod": "v1.0.0"}


def test_a_deregistered_release_holds_nothing():
    dereg = [RELEASES[0], Release("m", V2, "m@v2.0.0", "c2", 11, deregistered=True, order=1)]
    assert held([event("prod", V1, 20), event("prod", V2, 21)], dereg) == {"prod": "v1.0.0"}


def test_time_orders_events_not_counters():
    assert held([event("prod", V2, 21, counter=1), event("prod", V1, 20, counter=9)]) == {"prod": "v2.0.0"}


def test_an_unreleased_commit_is_a_version_of_its_own_per_tag():
    # GTO binds nothing to a stage tag on a commit without a release: the unassignment cancels nothing
    assert held([event("prod", None, 20, commit="c9"), event("prod", None, 21, unassign=True, commit="c9")]) == \
        {"prod": "c9"}


def planned(workspace, index, head, target=b"T") -> Planned:
    return Planned("f", target, workspace, index, head)


def test_a_rollback_may_replace_what_head_or_the_target_holds():
    assert uncommitted([planned(b"H", b"H", b"H")], commit=True) == []
    assert uncommitted([planned(b"T", b"T", b"H")], commit=True) == []     # a rollback that was interrupted
    assert uncommitted([planned(None, b"H", b"H")], commit=True) == []     # deleted: git still holds it


def test_a_rollback_may_not_lose_untracked_edited_or_staged_content():
    assert uncommitted([planned(b"W", None, None)], commit=False) == ["f (not committed)"]
    assert uncommitted([planned(b"W", b"H", b"H")], commit=False) == ["f (uncommitted change)"]
    assert uncommitted([planned(b"S", b"S", b"H")], commit=False) == ["f (staged change)"]
    # staged, then the workspace put back: only committing would lose the staged content
    assert uncommitted([planned(b"H", b"S", b"H")], commit=False) == []
    assert uncommitted([planned(b"H", b"S", b"H")], commit=True) == ["f (staged change)"]


def test_tag_names_and_messages_read_back_through_the_one_grammar():
    from gitmodel import refs

    assert refs.parse_tag(refs.unassign_tag("m", "prod", 7)) == refs.Tag("m", "stage", stage="prod", counter=7,
                                                                         cancel=True)
    assert refs.parse_tag(refs.stage_tag("m", "prod", 3)) == refs.Tag("m", "stage", stage="prod", counter=3)
    record = {"schema_version": refs.RECORD_SCHEMA, "md5": "a" * 32}
    text = refs.release_message("m", V2, "# not a comment\nsecond line", record)
    assert text.splitlines()[0] == "Registering artifact m version v2.0.0"
    assert refs.parse_release_message(text, "m", V2) == ("# not a comment\nsecond line", record)
    message = refs.stage_message("m", "canary", V2, {"Assigned-By": "Jane <j@x>", "Fraction": "0.1", "Gate": None,
                                                     "Accepted-Risk": "spans\ntwo lines"})
    assert message.splitlines()[0] == "Assigning stage canary to artifact m version v2.0.0"
    assert refs.parse_trailers(message) == {"Assigned-By": "Jane <j@x>", "Fraction": "0.1",
                                            "Accepted-Risk": "spans two lines"}
    assert refs.stage_message("m", "prod", V2, {}, unassign=True) == \
        "Unassigning stage 'prod' to artifact 'm' version 'v2.0.0'\n"


def test_every_did_you_mean_has_one_wording():
    from gitmodel import known

    assert known.close("sentimnt", ["sentiment", "chat"]) == "did you mean 'sentiment'?"
    assert known.close("mian", ["main", "man", "mine"]) == "did you mean 'man', 'mine' or 'main'?"   # nearest first
    assert known.close("sentimnt", ["sentiment", "sentiments"]) == "did you mean 'sentiment' or 'sentiments'?"
    assert known.suggestion("chat", ["chat"]) == ""               # a name is never its own suggestion
    assert known.suggestion("zzz", ["sentiment"]) == ""
    assert known.did_you_mean("zzz", ["b", "a"]) == "known: a, b"
