"""The engine knows nothing of the web: no module under engine/ imports flask or web."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "engine"
FORBIDDEN = {"flask", "web", "werkzeug", "jinja2", "flask_wtf"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_engine_never_imports_the_web():
    offenders = {
        str(p.relative_to(ENGINE)): sorted(imported_roots(p) & FORBIDDEN)
        for p in ENGINE.rglob("*.py")
        if imported_roots(p) & FORBIDDEN
    }
    assert offenders == {}


def test_the_check_sees_an_offending_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from flask import request\n")
    assert imported_roots(bad) & FORBIDDEN == {"flask"}
