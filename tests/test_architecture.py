"""The layout rules of ARCHITECTURE.md, checked: the floors (no package imports one above
it), no module over 400 lines and no function over 60, no helper with more than 7
parameters or public function with more than 12, no tuple of more than 4 returned, and no
ticket history in the code."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = {  # package -> the project packages it may import
    "pixcolor": set(),
    "baselines": {"pixcolor"},
    "analysis": {"pixcolor"},
    "vtt_app": {"pixcolor"},
    "bench": {"pixcolor", "baselines", "analysis"},
    "tools": {"pixcolor", "baselines", "analysis", "bench", "vtt_app"},
}
SOURCES = sorted(p for d in [*FLOORS, "scripts"] for p in (ROOT / d).rglob("*.py"))


def _imports(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_no_package_imports_upwards(package):
    wrong = {}
    for path in (ROOT / package).rglob("*.py"):
        bad = (_imports(ast.parse(path.read_text())) & set(FLOORS)) - FLOORS[package] - {package}
        if bad:
            wrong[str(path.relative_to(ROOT))] = sorted(bad)
    assert not wrong, wrong


def test_modules_and_functions_stay_small():
    assert len(SOURCES) > 50
    long_modules, long_functions = [], []
    for path in SOURCES:
        text = path.read_text()
        rel = path.relative_to(ROOT)
        if text.count("\n") > 400:
            long_modules.append(f"{rel}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > 60:
                    long_functions.append(f"{rel}:{node.lineno} {node.name}: {n} lines")
    assert not long_modules and not long_functions, long_modules + long_functions


def _n_parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Parameters a caller can pass (``self``/``cls`` and ``*args``/``**kwargs`` not counted)."""
    a = node.args
    names = [p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs]]
    return len([n for n in names if n not in ("self", "cls")])


def _tuple_returns(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """The longest tuple the function returns, from its ``return`` statements and its
    ``tuple[...]`` annotation (0 if none)."""
    longest = 0
    ann = node.returns
    if isinstance(ann, ast.Subscript) and getattr(ann.value, "id", "") == "tuple":
        elts = ann.slice.elts if isinstance(ann.slice, ast.Tuple) else [ann.slice]
        if not any(isinstance(e, ast.Constant) and e.value is Ellipsis for e in elts):
            longest = len(elts)
    for sub in ast.walk(node):
        if isinstance(sub, ast.Return) and isinstance(sub.value, ast.Tuple):
            longest = max(longest, len(sub.value.elts))
    return longest


def test_parameters_and_returned_tuples_stay_few():
    """A private helper takes at most 7 parameters, a public function at most 12 (options
    beyond that belong in a dataclass), and nothing returns a tuple of more than 4."""
    wrong = []
    for path in SOURCES:
        rel = path.relative_to(ROOT)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            limit = 7 if node.name.startswith("_") and not node.name.startswith("__") else 12
            if _n_parameters(node) > limit:
                wrong.append(f"{rel}:{node.lineno} {node.name}: {_n_parameters(node)} "
                             f"parameters (> {limit})")
            if _tuple_returns(node) > 4:
                wrong.append(f"{rel}:{node.lineno} {node.name}: returns a tuple of "
                             f"{_tuple_returns(node)}")
    assert not wrong, "\n".join(wrong)


def test_code_carries_no_ticket_history():
    """Code and tests say what they do and why, not which ticket asked for it."""
    import re

    pattern = re.compile("issue" + r" [0-9]+|must" + "-fix", re.IGNORECASE)
    files = [p for d in [*FLOORS, "scripts", "tests"] for ext in ("*.py", "*.sh")
             for p in (ROOT / d).rglob(ext)]
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in files
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, hits
