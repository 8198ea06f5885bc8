"""The layers hold: ``protocols`` (the cryptography) imports neither ``actors`` (the runtime) nor
``netsim`` (the simulator), and ``actors`` does not import ``netsim`` (netsim adds its ``simulate``
command as a ``spdz.commands`` plug-in). An AST scan of every module, function-level imports
included, so that a forbidden import fails here and not in a review."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"protocols": {"actors", "netsim"}, "actors": {"netsim"}}


def imported_packages(path: Path) -> set[tuple[int, str]]:
    """(line, top-level package) of every absolute import in the module at ``path``."""
    out: set[tuple[int, str]] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update((node.lineno, a.name.split(".")[0]) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add((node.lineno, node.module.split(".")[0]))
    return out


def violations(layer: str) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line} imports {package}"
        for path in sorted((ROOT / layer).rglob("*.py"))
        for line, package in sorted(imported_packages(path))
        if package in FORBIDDEN[layer]
    ]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_layer_imports_a_layer_above_it(layer: str) -> None:
    assert violations(layer) == []


def test_the_scan_finds_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from actors.cluster import local_cluster\n    import netsim.runner\n")
    assert imported_packages(bad) == {(2, "actors"), (3, "netsim")}


def test_spdz_help_and_the_cli_load_without_the_simulator() -> None:
    """``spdz --help`` lists ``simulate`` (the plug-in registered) without importing netsim's
    simulator modules."""
    code = (
        "import sys; from actors import cli; cli.build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith('netsim')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # noqa: S603
    assert out.stdout.strip() == "['netsim', 'netsim.command']", out.stdout + out.stderr
