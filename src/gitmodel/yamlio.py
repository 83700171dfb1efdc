"""How a YAML parse error is told: the line and column, what is wrong, and nothing of the parser's internals."""
from __future__ import annotations


def describe(error: Exception) -> str:
    """``line 38, column 1: duplicate key "gate" (a key may appear once in a mapping)``, from a ruamel error."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    if mark is None or not problem:
        return str(error).split("\n\nTo suppress")[0].strip()
    where = f"line {mark.line + 1}, column {mark.column + 1}"
    if type(error).__name__ == "DuplicateKeyError":
        key = problem.split('"')[1] if problem.count('"') >= 2 else "?"
        return f"{where}: duplicate key \"{key}\" (a key may appear once in a mapping: merge the two)"
    context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
    if context and context_mark is not None:
        return f"{where}: {problem} ({context} started at line {context_mark.line + 1})"
    return f"{where}: {problem}"
