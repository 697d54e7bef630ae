"""The layers hold both ways (SPEC §1): core imports nothing above it, handlers import nothing from bot.

Every module under core/ and handlers/ is read as an AST, so an import inside a function or behind
TYPE_CHECKING counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "core": ("handlers", "bot", "standin", "slack_sdk", "slack_bolt"),
    "handlers": ("bot", "standin"),
}


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, module) for every absolute import in the source."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def upward_imports(layer: str, source: str) -> list[str]:
    return [
        f"line {line}: {module}"
        for line, module in imported_modules(source)
        if module.split(".")[0] in FORBIDDEN[layer]
    ]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_module_imports_upward(layer: str) -> None:
    modules = sorted((ROOT / layer).rglob("*.py"))
    assert modules, f"no modules found under {layer}/"
    problems = {
        str(path.relative_to(ROOT)): found
        for path in modules
        if (found := upward_imports(layer, path.read_text(encoding="utf-8")))
    }
    assert not problems, f"{layer}/ imports from a layer above it: {problems}"


@pytest.mark.parametrize(
    ("layer", "planted"),
    [
        ("handlers", "from bot.settings import Settings"),
        ("handlers", "def f():\n    import bot.slack_client\n"),
        ("core", "from slack_sdk import WebClient"),
        ("core", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from handlers.deps import Deps\n"),
    ],
)
def test_a_planted_upward_import_is_found(layer: str, planted: str) -> None:
    assert upward_imports(layer, planted)


def test_imports_within_the_layer_or_below_are_fine() -> None:
    assert not upward_imports("handlers", "from core import store\nfrom handlers.deps import Deps\nimport slack_sdk\n")
    assert not upward_imports("core", "from core.enums import Severity\nimport sqlalchemy\n")
