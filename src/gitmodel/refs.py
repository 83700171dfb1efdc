"""The one grammar of names, versions and tags (GTO's format). Pure.

Model names are the intersection of what GTO and DVC's ``artifacts:`` accept:
lowercase letters, digits and ``-``, starting and ending with a letter or
digit. (GTO also allows ``_``, ``/`` and capitals, DVC does not; a name both
accept keeps ``gto show`` and ``dvc artifacts get`` working.)

Tags, as GTO writes them:
  release  ``<name>@v<semver>``           e.g. ``chat@v1.2.0``
  stage    ``<name>#<stage>#<counter>``   e.g. ``chat#prod#3``
  deprecated / deregistered releases: ``<name>@v1.2.0!`` and ``<name>@deprecated#N``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from gitmodel.errors import InvalidName

NAME = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
NAME_RE = re.compile(rf"^{NAME}\Z")  # \Z, not $: "$" also matches before a trailing newline
SEMVER = (r"(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
          r"(?:-(?P<prerelease>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
          r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?")
VERSION_RE = re.compile(rf"^v{SEMVER}\Z")
MAX_NAME_LENGTH = 100


def check_name(name: str, what: str = "model name") -> str:
    """Return ``name`` if it follows the grammar, else raise InvalidName saying why."""
    if not isinstance(name, str) or not name:
        raise InvalidName(f"invalid {what}: it is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"invalid {what} {name[:20]!r}...: longer than {MAX_NAME_LENGTH} characters")
    if not NAME_RE.match(name):
        shown = name.encode("unicode_escape").decode("ascii")
        raise InvalidName(
            f"invalid {what} '{shown}': use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (e.g. 'chat' or 'fraud-v2')",
            hint=f"pass --name with a valid {what}" if what == "model name" else None,
        )
    return name


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: str | None = None
    build: str | None = None

    @classmethod
    def parse(cls, text: str) -> "Version":
        """``v1.2.0`` or ``1.2.0`` (also with a pre-release / build part)."""
        typed = text
        if not isinstance(text, str) or not text.startswith("v"):
            text = f"v{text}"
        m = VERSION_RE.match(text)
        if not m:
            shown = str(typed).encode("unicode_escape").decode("ascii")
            raise InvalidName(f"invalid version '{shown}': expected SemVer like v1.2.0 (or v1.2.0-rc.1)")
        return cls(int(m["major"]), int(m["minor"]), int(m["patch"]), m["prerelease"], m["build"])

    def _key(self):
        # SemVer precedence: a pre-release sorts before its release; numeric
        # identifiers compare numerically and below alphanumeric ones.
        pre = ()
        if self.prerelease is not None:
            pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease.split("."))
        return (self.major, self.minor, self.patch, self.prerelease is None, pre)

    def __lt__(self, other: "Version") -> bool:
        return self._key() < other._key()

    def __eq__(self, other) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        s = f"v{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            s += f"-{self.prerelease}"
        if self.build:
            s += f"+{self.build}"
        return s


def release_tag(name: str, version: Version) -> str:
    return f"{check_name(name)}@{version}"


def stage_tag(name: str, stage: str, counter: int) -> str:
    return f"{check_name(name)}#{check_name(stage, 'stage name')}#{counter}"


TAG_RE = re.compile(
    rf"^(?P<name>{NAME})(?:"
    rf"@(?P<version>v{SEMVER})(?P<cancel>!?)(?:#(?P<vcounter>\d+))?"
    rf"|#(?P<stage>{NAME})(?P<scancel>!?)(?:#(?P<counter>\d+))?"
    rf"|@(?P<deprecated>deprecated)(?:#(?P<dcounter>\d+))?"
    rf")\Z"
)


@dataclass(frozen=True)
class Tag:
    name: str
    kind: str                  # "release" | "stage" | "deprecated"
    version: Version | None = None
    stage: str | None = None
    counter: int | None = None
    cancel: bool = False       # GTO's "!": the release or stage assignment is withdrawn


def parse_tag(tag: str) -> Tag | None:
    """A git-model/GTO tag, or None for any other tag."""
    m = TAG_RE.match(tag)
    if not m:
        return None
    if m["version"]:
        counter = m["vcounter"]
        return Tag(m["name"], "release", version=Version.parse(m["version"]), cancel=bool(m["cancel"]),
                   counter=int(counter) if counter else None)
    if m["stage"]:
        counter = m["counter"]
        return Tag(m["name"], "stage", stage=m["stage"], cancel=bool(m["scancel"]),
                   counter=int(counter) if counter else None)
    counter = m["dcounter"]
    return Tag(m["name"], "deprecated", counter=int(counter) if counter else None)
