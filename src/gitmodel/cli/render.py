"""What the comparing commands (diff, gate, promote's refusal) share to render: numbers, the text
table and GitHub Markdown, safe to paste into a pull-request comment.

Lean on purpose: `git model diff` imports it, and must start fast (no tabulate, see :func:`table`).
"""
from __future__ import annotations

MD_MAX_CELL = 160


def number(value, precision: int) -> str:
    if isinstance(value, float):
        text = f"{round(value, precision):.{precision}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    return str(value)


def value(value, precision: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    return number(value, precision)


def signed(change, precision: int) -> str:
    if change is None:
        return ""
    text = number(change, precision)
    return text if text.startswith("-") or text == "0" else f"+{text}"


def table(rows: list[list[str]], headers: list[str], align: tuple[str, ...]) -> str:
    """The text table: the same characters as ``tabulate(rows, headers, tablefmt="simple",
    disable_numparse=True, colalign=align)`` (a unit test holds them equal), without importing
    tabulate, whose import reads package metadata (~40 ms) on the path `diff` must run fast."""
    widths = [max([len(h) + 2] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]

    def line(cells) -> str:
        return "  ".join(c.rjust(w) if a == "right" else c.ljust(w)
                         for c, w, a in zip(cells, widths, align)).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths).rstrip(), *map(line, rows)])


def md_cell(text, limit: int = MD_MAX_CELL) -> str:
    """Text safe in a GitHub table cell: no HTML, no column break, one line, bounded."""
    text = "" if text is None else str(text)
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    for plain, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("`", "'")):
        text = text.replace(plain, escaped)
    return text.replace("\r", "").replace("\n", "<br>")


def code(text) -> str:
    # backslashes do not escape inside a code span: a backtick becomes a quote
    return "`" + str(text).replace("`", "'").replace("|", "\\|").replace("\n", " ") + "`"


def md_table(rows: list[list[str]], headers: list[str], align: tuple[str, ...]) -> list[str]:
    marks = {"left": "---", "right": "---:", "center": ":---:"}
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(marks[a] for a in align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines
