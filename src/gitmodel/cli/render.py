"""The CLI's one rendering kit: numbers, the text table, GitHub Markdown (safe to paste into a
pull-request comment) and a checkpoint's lineage block.

Lean on purpose: `git model diff` and `log` import it, and must start fast (tabulate only when a table
needs it, see :func:`table`).
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


def fixed(value) -> str:
    """A metric in a summary line or column (log, show, release): four decimals, integers as they are."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def signed(change, precision: int) -> str:
    if change is None:
        return ""
    text = number(change, precision)
    return text if text.startswith("-") or text == "0" else f"+{text}"


def table(rows: list[list[str]], headers: list[str] | None, align: tuple[str, ...] | None = None,
          fmt: str = "simple") -> str:
    """The text table of every command: ``tabulate(rows, headers, tablefmt=fmt, disable_numparse=True,
    colalign=align)`` with ``fmt`` "simple" (a dashed rule under the headers) or "plain" (none).

    Tables of ASCII text, which is what metric names, revisions and numbers are, take a fast path that
    writes the same characters (a unit test holds the two equal on random tables): importing tabulate
    (package metadata, wcwidth) costs ~100 ms on a 2-core machine, a third of `git model diff A B` at
    1,000 releases, which must stay 3x faster than `dvc metrics diff`. Any other text (a category in
    Japanese, an emoji in an output) goes to tabulate itself, whose wcwidth measures wide characters as
    a terminal shows them."""
    headers = list(headers or [])
    rows = [[cell.strip() for cell in row] for row in rows]   # as tabulate aligns data cells
    if not all(cell.isascii() for cell in headers) or not all(cell.isascii() for row in rows for cell in row):
        from tabulate import tabulate

        return tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True, colalign=align)
    columns = len(headers) if headers else max((len(row) for row in rows), default=0)
    align = align or ("left",) * columns
    pad = 2 if headers else 0
    widths = [max([len(headers[i]) + pad if headers else 0] + [len(row[i]) for row in rows])
              for i in range(columns)]

    def line(cells) -> str:
        return "  ".join(c.rjust(w) if a == "right" else c.ljust(w)
                         for c, w, a in zip(cells, widths, align)).rstrip()

    rule = "  ".join("-" * w for w in widths).rstrip()
    body = [line(row) for row in rows]
    if fmt == "plain":
        return "\n".join(([line(headers)] if headers else []) + body)
    return "\n".join([line(headers), rule, *body] if headers else [rule, *body, rule])


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


def whole_percents(shares: dict[str, float]) -> dict[str, int]:
    """Shares (fractions) as whole percents that add up as the shares do (largest remainder first), so
    that 54.5 % and 45.5 % print as 55 % and 45 %, not as 55 % and 46 %."""
    exact = {k: v * 100 for k, v in shares.items()}
    whole = {k: int(v) for k, v in exact.items()}
    left = round(sum(exact.values())) - sum(whole.values())
    for k in sorted(exact, key=lambda k: -(exact[k] - whole[k]))[:max(left, 0)]:
        whole[k] += 1
    return whole


def review_side(label: str, side) -> str:
    """One side of a human review comparison, as a reader needs it beside the side's ``label``: the version
    scored (unless the label names it), n, and the file it came from when that is not the side's own."""
    if side is None or not side.reviewed:
        return "not reviewed"
    parts = [] if f"@{side.version}" in label else [str(side.version)]
    parts.append(f"n {side.n}")
    if side.source and not side.source.endswith(f" at {label}"):
        parts.append(f"from {side.source}")
    return ", ".join(parts)


def lineage(gguf: dict | None, lin: dict | None) -> list[str]:
    """A checkpoint's header and where it came from (``add``, ``show``): indented lines."""
    lines = []
    g = gguf or {}
    lin = lin or {}
    if g:
        params = g.get("parameters")
        shown = f"{params:,}" if isinstance(params, int) else "?"
        lines.append(f"  gguf:      {g.get('architecture') or '?'}, {shown} parameters, "
                     f"{g.get('quantization') or '?'}, context {g.get('context_length') or '?'}")
    if "stage" in lin:
        lines.append(f"  made by:   dvc.lock stage {lin['stage']}: {lin.get('cmd')}")
        for dep in lin.get("deps") or []:
            lines.append(f"    dep      {dep.get('path')} (md5 {dep.get('md5')})")
        for file, values in (lin.get("params") or {}).items():
            if isinstance(values, dict):
                lines.append(f"    params   {file}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    if isinstance(lin.get("dataset"), dict):
        size = ", ".join(f"{lin['dataset'][k]:,} {k}" for k in ("lines", "bytes") if isinstance(lin['dataset'].get(k), int))
        lines.append(f"  dataset:   {lin['dataset'].get('path')} (md5 {lin['dataset'].get('md5')}"
                     + (f"; {size})" if size else ")"))
    if isinstance(lin.get("params"), dict) and "stage" not in lin:
        lines.append("  params:    " + ", ".join(f"{k}={v}" for k, v in lin["params"].items()))
    if lin.get("base_model"):
        lines.append(f"  base:      {lin['base_model']}")
    if lin.get("training_duration_s") is not None:
        lines.append(f"  trained:   {lin['training_duration_s']} s")
    if lin.get("trained_at"):
        lines.append(f"  trained at: {lin['trained_at']}")
    return lines
