"""Every error git-model raises on purpose.

Each class builds its own message: what is wrong, naming the file, line, field
or tag, and (``hint``) the way out. The CLI catches :class:`GitModelError` in
one place, prints ``Error: <message>`` and exits with ``exit_code``.
"""
from __future__ import annotations


class GitModelError(Exception):
    """Base of every error the CLI reports without a traceback."""

    exit_code = 3

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class NotAGitRepository(GitModelError):
    def __init__(self, path):
        super().__init__(
            f"{path} is not inside a git work tree",
            hint="run `git init` first, or cd into your repository",
        )


class NotInitialized(GitModelError):
    def __init__(self, root):
        super().__init__(
            f"{root} is not a git-model repository (no dvc.yaml or .dvc/)",
            hint="run `git model init` first",
        )


class InvalidName(GitModelError):
    pass


class InvalidPath(GitModelError):
    pass


class InvalidGGUF(GitModelError):
    """A file that is not a well-formed GGUF checkpoint; llama.cpp never sees it."""

    def __init__(self, path, problem: str, offset: int | None = None):
        where = f" (at byte {offset})" if offset is not None else ""
        super().__init__(
            f"{path}: not a valid GGUF file: {problem}{where}",
            hint="check that the file is a complete GGUF checkpoint "
            "(re-download or re-convert it)",
        )
        self.path = path
        self.problem = problem
        self.offset = offset


class InvalidEvalSet(GitModelError):
    """An eval set line that breaks the format; names ``file:line`` and the field."""

    def __init__(self, path, line: int | None, problem: str, hint: str | None = None):
        where = f"{path}:{line}" if line is not None else f"{path}"
        if hint is None and line is not None:
            hint = "fix that line, then track the file again with `git model evalset add`"
        super().__init__(f"{where}: {problem}", hint=hint)
        self.path = path
        self.line = line
        self.problem = problem


class InvalidLog(GitModelError):
    """A production log that cannot be read: a path that is not there, a line that is not a record."""

    def __init__(self, path, line: int | None, problem: str, hint: str | None = None):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}", hint=hint)
        self.path, self.line, self.problem = str(path), line, problem


class InvalidParams(GitModelError):
    pass


class InvalidPrompt(GitModelError):
    """A prompt or chat template that cannot render an example: names the template and the field."""


class ScorerError(GitModelError):
    """A scorer that cannot be set up or that failed on an example: names the scorer (and the example)."""


class InvalidMetrics(GitModelError):
    """A metrics file that breaks its schema; re-running the eval writes a good one."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, hint=hint or "re-create it with `git model eval MODEL --evalset NAME --force` "
                                               "(at a past revision: the file committed there is damaged)")


class ModelNotFound(GitModelError):
    pass


class EvalSetNotFound(GitModelError):
    pass


class StaleArtifact(GitModelError):
    """A workspace file differs from what DVC tracks for it."""


class RunnerError(GitModelError):
    """A runner could not produce predictions (endpoint down, bad entry point...)."""


class LockHeld(GitModelError):
    pass


class DvcError(GitModelError):
    pass


class UnpairedEval(GitModelError):
    """An eval of a model on an eval set dvc.yaml does not pair it with."""


class GatedEvalSet(GitModelError):
    """Unpairing an eval set that a model's gate compares on."""


class GitError(GitModelError):
    pass


class UnverifiedResult(GitModelError):
    """A result whose producer is not tied to the tracked checkpoint, refused by release or promote."""

    def __init__(self, action: str, unverified: list[tuple[str, str]], empty_rationale: bool = False):
        if empty_rationale:
            super().__init__("--accept-unverified needs a rationale in plain words (no control characters): "
                             "why these results can be trusted",
                             hint='e.g. --accept-unverified "served by our own pinned deployment, checked by hand"')
        else:
            listed = "; ".join(f"{path} ({detail})" for path, detail in unverified)
            super().__init__(f"{action} refused: unverified results: {listed}",
                             hint="reproduce them in-process with `git model verify MODEL` (it records the "
                                  "verification in the metrics file: commit it), or pass "
                                  '--accept-unverified "why" (recorded in the tag message)')
        self.unverified = unverified


class CheckpointCrashes(GitModelError):
    """llama.cpp died (or hung) loading a checkpoint: the file's fault, named."""

    def __init__(self, path, detail: str, remembered: bool):
        when = " (remembered from its first load)" if remembered else ""
        super().__init__(
            f"{path}: llama.cpp cannot load this checkpoint safely: a test load in a child process "
            f"{detail}{when}",
            hint="the file is damaged or made for another llama.cpp: re-download or re-convert it; "
                 "to try again after upgrading llama-cpp-python, remove .dvc/tmp/gitmodel/loadcheck.json",
        )
        self.path = path
        self.detail = detail


class InvalidProfile(GitModelError):
    """A drift profile that cannot be read or used: names the file (or the profile) and the field."""

    def __init__(self, source, problem: str, hint: str | None = None):
        super().__init__(f"{source}: {problem}", hint=hint)
        self.source, self.problem = str(source), problem


class InvalidReview(GitModelError):
    """A review sample or scores file that breaks the rubric: names ``file:line`` and the field."""

    def __init__(self, path, line: int | None, problem: str, hint: str | None = None):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}", hint=hint)
        self.path, self.line, self.problem = str(path), line, problem
