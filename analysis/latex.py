"""Tables as LaTeX: booktabs ``tabular`` environments, ready to ``\\input``.

A document that inputs them needs ``\\usepackage{booktabs}``; every text is escaped
(:func:`latex_escape`: ``& % $ # _ { } ~ ^ \\``, and the symbols the tables use, such as
``±``, ``∞``, ``†``, ``↑``, which pdflatex's default fonts lack, as math).
"""

from __future__ import annotations

from collections.abc import Sequence

LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                 "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                 "^": r"\textasciicircum{}", "|": r"\textbar{}", "<": r"\textless{}",
                 ">": r"\textgreater{}", "±": r"$\pm$", "∞": r"$\infty$", "†": r"$^\dagger$",
                 "↑": r"$\uparrow$", "↓": r"$\downarrow$", "★": r"$\star$", "×": r"$\times$",
                 "–": "--", "—": "---", "≤": r"$\leq$", "≥": r"$\geq$", "Δ": r"$\Delta$",
                 "’": "'", "…": r"\ldots{}"}


def latex_escape(text: object) -> str:
    """``text`` with LaTeX's special characters escaped (and the tables' symbols as math)."""
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def tabular(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None,
            comment: str = "", escape: bool = True) -> str:
    """A booktabs ``tabular``: ``\\toprule``, the header, ``\\midrule``, the rows,
    ``\\bottomrule``.

    Args:
        header: the column names.
        rows: the cells, as many per row as ``header``.
        align: column alignment (default: ``l`` then ``r`` per further column).
        comment: a line written above, as a LaTeX comment (the table's caption).
        escape: escape the header and cells (False: they are LaTeX already).

    Raises:
        ValueError: a row has a different number of cells than the header.
    """
    esc = latex_escape if escape else str
    align = align or "l" + "r" * (len(header) - 1)
    lines = [f"% {' '.join(latex_escape(comment).splitlines())}"] if comment else []
    lines += [r"% Needs \usepackage{booktabs}.", r"\begin{tabular}{" + align + "}",
              r"\toprule", " & ".join(esc(h) for h in header) + r" \\", r"\midrule"]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row of {len(row)} cells under {len(header)} columns")
        lines.append(" & ".join(esc(c) for c in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
