"""Writers of the cross-run tables: CSV, Markdown and LaTeX text (``hedonic tables``).

Private; :mod:`hedonic_neurons.metrics.crossrun` re-exports :func:`to_csv`, :func:`to_markdown`
and :func:`to_latex`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


# ----------------------------------------------------------------------------- writers
def _header_and_body(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    names = [str(n) if n is not None else "" for n in table.index.names]
    if isinstance(table.columns, pd.MultiIndex):
        cols = [" / ".join(str(p) for p in c if str(p)) for c in table.columns]
    else:
        cols = [str(c) for c in table.columns]
    body = [[*(str(k) for k in (key if isinstance(key, tuple) else (key,))), *(str(v) for v in row)]
            for key, row in zip(table.index, table.itertuples(index=False, name=None))]
    return [*names, *cols], body


def to_csv(table: pd.DataFrame) -> str:
    """CSV with one header row: the index levels as leading columns, column levels joined by ``" / "``."""
    header, body = _header_and_body(table)
    return pd.DataFrame(body, columns=header).to_csv(index=False, lineterminator="\n")


def to_markdown(table: pd.DataFrame, title: str | None = None) -> str:
    """A GitHub pipe table; a repeated leading index value (a row group) is printed once."""
    header, body = _header_and_body(table)
    n_index = table.index.nlevels

    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = [f"### {title}", ""] if title else []
    lines += ["| " + " | ".join(esc(h) for h in header) + " |",
              "|" + "|".join(" --- " if i < n_index else " ---: " for i in range(len(header))) + "|"]
    previous: str | None = None
    for row in body:
        shown = list(row)
        if n_index > 1 and row[0] == previous:
            shown[0] = ""
        previous = row[0]
        lines.append("| " + " | ".join(esc(c) for c in shown) + " |")
    return "\n".join(lines) + "\n"


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_SYMBOLS = {"±": r"$\pm$", "—": "---", "²": r"$^2$", "Δ": r"$\Delta$", "ε̂": r"$\hat\varepsilon$",
                  "ε": r"$\varepsilon$"}


def _tex(s: Any) -> str:
    out = "".join(_LATEX.get(ch, ch) for ch in str(s))
    for k, v in _LATEX_SYMBOLS.items():
        out = out.replace(k, v)
    return out.replace("R2", r"R$^2$")


def to_latex(table: pd.DataFrame, caption: str | None = None, label: str | None = None) -> str:
    """A booktabs ``tabular``: a model row over its metric columns (``\\cmidrule``), a row-group line per
    task (first index level) and one row per method. Text is escaped; ``±`` becomes ``$\\pm$``."""
    n_index = table.index.nlevels
    lines = [r"\begin{table}[t]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{_tex(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    body_index = n_index - 1 if n_index > 1 else n_index
    n_cols = body_index + table.shape[1]
    lines += [r"\begin{tabular}{" + "l" * body_index + "r" * table.shape[1] + "}", r"\toprule"]
    lead = [_tex(n or "") for n in table.index.names][-body_index:]
    if isinstance(table.columns, pd.MultiIndex) and table.columns.nlevels == 2:
        groups: list[tuple[str, int]] = []
        for top, _ in table.columns:
            if groups and groups[-1][0] == top:
                groups[-1] = (top, groups[-1][1] + 1)
            else:
                groups.append((top, 1))
        head = [""] * body_index + [rf"\multicolumn{{{k}}}{{c}}{{{_tex(top)}}}" for top, k in groups]
        lines.append(" & ".join(head) + r" \\")
        start = body_index + 1
        rules = []
        for _, k in groups:
            rules.append(rf"\cmidrule(lr){{{start}-{start + k - 1}}}")
            start += k
        lines.append(" ".join(rules))
        lines.append(" & ".join([*lead, *(_tex(c[1]) for c in table.columns)]) + r" \\")
    else:
        lines.append(" & ".join([*lead, *(_tex(c) for c in table.columns)]) + r" \\")
    lines.append(r"\midrule")
    previous: Any = None
    for i, (key, row) in enumerate(zip(table.index, table.itertuples(index=False, name=None))):
        key_t = key if isinstance(key, tuple) else (key,)
        if n_index > 1:
            if i == 0 or key_t[0] != previous:
                if i > 0:
                    lines.append(r"\midrule")
                lines.append(rf"\multicolumn{{{n_cols}}}{{l}}{{\textit{{{_tex(key_t[0])}}}}} \\")
                previous = key_t[0]
            key_t = key_t[1:]
        lines.append(" & ".join([*(_tex(k) for k in key_t), *(_tex(v) for v in row)]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
