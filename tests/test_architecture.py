"""The layout rules of ARCHITECTURE.md, checked: the floors (no package imports one above
it), no module over 400 lines and no function over 60 outside the tests."""

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
