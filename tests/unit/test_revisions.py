"""The revision grammar alone (revisions.parse): no git, no registry."""
from __future__ import annotations

import pytest

from gitmodel import revisions
from gitmodel.refs import Version
from gitmodel.revisions import Spec, UnknownRevision


@pytest.mark.parametrize("text", [None, "", "workspace"])
def test_the_workspace(text):
    assert revisions.parse(text) == Spec("workspace", "workspace")


@pytest.mark.parametrize("text, version", [
    ("chat@v1.2.0", "v1.2.0"), ("chat@1.2.0", "v1.2.0"), ("fraud-v2@v0.1.0-rc.1", "v0.1.0-rc.1"),
    ("chat@v1.10.0+build.5", "v1.10.0+build.5")])
def test_a_release(text, version):
    spec = revisions.parse(text)
    assert (spec.kind, spec.model, spec.version) == ("release", text.partition("@")[0], Version.parse(version))


@pytest.mark.parametrize("text", ["chat@latest", "chat@greatest"])
def test_latest_as_gto_spells_it(text):
    assert revisions.parse(text) == Spec(text, "latest", "chat")


def test_a_stage():
    assert revisions.parse("chat#prod") == Spec("chat#prod", "stage", "chat", stage="prod")


@pytest.mark.parametrize("text", [
    "HEAD", "HEAD~2", "main", "0123abc", "HEAD@{1}", "main@{yesterday}",   # git's own @
    "chat#prod#3",        # a stage tag's full name: a git tag
    "Chat@v1.0.0",        # not a model name: git decides
    "chat#Prod",          # not a stage name
    "refs/tags/chat@v1.0.0", "chat@", "@", "#prod", "chat#"])
def test_anything_else_is_a_git_revision(text):
    assert revisions.parse(text) == Spec(text, "git")


@pytest.mark.parametrize("text, message", [
    ("chat@v1.2", "chat@v1.2: 'v1.2' is not a SemVer version like v1.2.0"),
    ("chat@v01.2.0", "chat@v01.2.0: 'v01.2.0' is not a SemVer version like v1.2.0"),
    ("chat@vnext", "chat@vnext: 'vnext' is not a SemVer version like v1.2.0"),
    ("--all", "invalid revision '--all': revisions do not start with '-'"),
    ("-n", "invalid revision '-n': revisions do not start with '-'"),
])
def test_text_no_reading_accepts(text, message):
    with pytest.raises(UnknownRevision) as e:
        revisions.parse(text)
    assert str(e.value).splitlines()[0] == message
