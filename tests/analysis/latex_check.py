"""Checks of the booktabs tables the report and the leaderboard write (used by their tests)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

UNESCAPED = r"(?<!\\)"


def check_booktabs(tex: str) -> int:
    """Assert that ``tex`` is one well-formed booktabs ``tabular``; return its row count.

    Balanced braces (escaped ones aside), ``\\toprule`` / ``\\midrule`` / ``\\bottomrule`` in
    that order, as many cells on every row as the column specification has columns, every
    row ended by ``\\\\``, math ``$`` paired, and no unescaped ``%``, ``_``, ``#``.
    """
    lines = [ln for ln in tex.splitlines() if ln.strip() and not ln.startswith("%")]
    text = "\n".join(lines)
    depth = 0
    for m in re.finditer(UNESCAPED + r"[{}]", text.replace("\\\\", "  ")):
        depth += 1 if m.group() == "{" else -1
        assert depth >= 0, f"a closing brace without its opening one in {tex!r}"
    assert depth == 0, "unbalanced braces"
    spec = re.fullmatch(r"\\begin\{tabular\}\{([lrc]+)\}", lines[0])
    assert spec, lines[0]
    n_cols = len(spec.group(1))
    assert lines[1] == r"\toprule" and lines[-2] == r"\bottomrule" and lines[-1] == \
        r"\end{tabular}", lines
    assert text.count(r"\toprule") == text.count(r"\bottomrule") == 1
    assert lines[3] == r"\midrule", "the header is one row, then \\midrule"
    rows = [ln for ln in lines[2:-2] if ln != r"\midrule"]
    for row in rows:
        assert row.endswith(r" \\"), row
        cells = row[:-3]
        assert len(re.findall(UNESCAPED + "&", cells)) == n_cols - 1, (n_cols, row)
        assert len(re.findall(UNESCAPED + r"\$", cells)) % 2 == 0, row
        for ch in "%_#":
            bare = re.sub(r"\$[^$]*\$", "", cells)  # math may hold ^ and _
            assert not re.search(UNESCAPED + re.escape(ch), bare), (ch, row)
    return len(rows) - 1


def compile_tables(paths: list[Path], workdir: Path) -> subprocess.CompletedProcess | None:
    """pdflatex on a minimal document that inputs every table (None without pdflatex)."""
    if shutil.which("pdflatex") is None:
        return None
    body = "\n".join(f"\\noindent\\input{{{p.resolve().as_posix()}}}\\par\\bigskip"
                     for p in paths)
    doc = workdir / "tables.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage[a3paper,landscape,margin=1cm]"
                   "{geometry}\n\\usepackage{booktabs}\n\\begin{document}\n\\tiny\n"
                   f"{body}\n\\end{{document}}\n")
    return subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                           doc.name], cwd=workdir, capture_output=True, text=True,
                          timeout=120)
