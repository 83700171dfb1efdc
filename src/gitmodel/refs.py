"""The one grammar of names, versions and tags (GTO's format), and the messages of its tags. Pure.

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


def shown(text) -> str:
    """``text`` as typed ('modèle' stays 'modèle'); only characters a terminal would not show are escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def check_name(name: str, what: str = "model name") -> str:
    """Return ``name`` if it follows the grammar, else raise InvalidName saying why."""
    if not isinstance(name, str) or not name:
        raise InvalidName(f"invalid {what}: it is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"invalid {what} '{shown(name[:20])}...': longer than {MAX_NAME_LENGTH} characters")
    if not NAME_RE.match(name):
        raise InvalidName(
            f"invalid {what} '{shown(name)}': use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (e.g. 'chat' or 'fraud-v2')",
            hint=f"pass --name with a valid {what}" if what == "model name" else None,
        )
    if what == "eval set name":
        from gitmodel.dvcyaml import REVIEW_NAME, review_path

        if name == REVIEW_NAME:
            raise InvalidName(f"invalid {what} '{name}': reserved for human review "
                              f"({review_path('MODEL')}, written by `git model review import`)",
                              hint=f"name the eval set otherwise, e.g. evalsets/{name}-set.jsonl")
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
            raise InvalidName(f"invalid version '{shown(typed)}': expected SemVer like v1.2.0 (or v1.2.0-rc.1)")
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


# ----------------------------------------------------------------------------- tag messages
#
# A release tag's message: GTO's first line, the user's message, then a record of what was released
# in a fenced JSON block. A stage tag's message: GTO's first line, a blank line, then git trailers,
# so both people and ``git interpret-trailers`` read it::
#
#     Assigning stage canary to artifact chat version v1.4.0
#
#     Assigned-By: Jane Doe <jane@example.com>
#     Assigned-At: 2025-03-01T12:00:00.123456+00:00
#     Fraction: 0.1
#     Gate: failed against v1.3.0 (prod): support: accuracy, labels.positive.fpr
#     Accepted-Risk: the fraud team signed off on the fpr change (JIRA-12)

RECORD_FENCE = "```json git-model"   # a fenced block: readable in `git show`, JSON-highlighted on forges
RECORD_SCHEMA = 1


def unassign_tag(name: str, stage: str, counter: int) -> str:
    """GTO's unassignment: ``<name>#<stage>!#<counter>``."""
    return f"{check_name(name)}#{check_name(stage, 'stage name')}!#{counter}"


def registration_line(model: str, version: Version) -> str:
    """The first line GTO writes for a registration (``gto register``)."""
    return f"Registering artifact {model} version {version}"


def release_message(model: str, version: Version, user_message: str | None, record: dict) -> str:
    """GTO's first line, the user's message, then the machine-readable record in a fenced JSON block."""
    import json

    parts = [registration_line(model, version)]
    if user_message and user_message.strip():
        parts.append(user_message.strip("\n"))
    parts.append(f"{RECORD_FENCE}\n{json.dumps(record, indent=2, sort_keys=False)}\n```")
    return "\n\n".join(parts) + "\n"


def parse_release_message(message: str, model: str | None = None,
                          version: Version | None = None) -> tuple[str, dict | None]:
    """(the user's message, the record or None) of a release tag's message.

    The record is the last fenced block opened by :data:`RECORD_FENCE` (the user's
    message comes before it, so it cannot stand in for ours). GTO's first line is
    dropped from the user's message when it is there.
    """
    import json

    lines = message.splitlines()
    record = None
    opened = max((i for i, line in enumerate(lines) if line.strip() == RECORD_FENCE), default=None)
    if opened is not None:
        closed = next((i for i in range(opened + 1, len(lines)) if lines[i].strip() == "```"), None)
        if closed is not None:
            try:
                parsed = json.loads("\n".join(lines[opened + 1:closed]))
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                record = parsed
                lines = lines[:opened] + lines[closed + 1:]
    first = lines[0].split(" ") if lines else []
    if (len(first) == 5 and first[:2] == ["Registering", "artifact"] and first[3] == "version"
            and model in (None, first[2]) and (version is None or first[4] == str(version))):
        lines = lines[1:]
    return "\n".join(lines).strip("\n"), record


def format_trailers(trailers: dict[str, str | None]) -> str:
    """``Key: value`` lines, one per trailer that has a value (a value is folded onto one line)."""
    lines = []
    for key, value in trailers.items():
        if value is None:
            continue
        value = " ".join(str(value).split())
        lines.append(f"{key}: {value}")
    return "\n".join(lines)


def stage_message(model: str, stage: str, version: Version | str, trailers: dict[str, str | None],
                  unassign: bool = False) -> str:
    """GTO's first line for an assignment (or an unassignment), a blank line, then the trailers."""
    first = (f"Unassigning stage '{stage}' to artifact '{model}' version '{version}'" if unassign else
             f"Assigning stage {stage} to artifact {model} version {version}")
    body = format_trailers(trailers)
    return f"{first}\n\n{body}\n" if body else f"{first}\n"


def parse_trailers(message: str) -> dict[str, str]:
    """The ``Key: value`` lines of a tag message's last paragraph (empty for GTO's plain messages)."""
    paragraphs = [p for p in (message or "").strip().split("\n\n") if p.strip()]
    if len(paragraphs) < 2:
        return {}
    found = {}
    for line in paragraphs[-1].splitlines():
        key, sep, value = line.partition(": ")
        if sep and key and " " not in key:
            found[key] = value.strip()
    return found
