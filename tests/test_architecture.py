"""The layering in STYLE.md, kept by walking the imports: a library leaking into the wrong
layer is how "what online means" ends up defined twice."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "exporter"

# library -> the only modules of the package allowed to import it
CONFINED = {
    "falcon": {"app", "resources", "statuspage", "adminroutes"},
    "pony": {"models", "store", "storebase", "adminstore", "schema", "history_store"},
    # cli creates the server; server runs its loop and drains it on SIGTERM
    "waitress": {"cli", "server"},
    # config reads settings; fleetfile reads the files of `kiosk import`
    "yaml": {"config", "fleetfile"},
    "yoyo": {"schema"},
    "segno": {"qr"},
}


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


MODULES = {p.stem: imports_of(p) for p in PACKAGE.glob("*.py")}


@pytest.mark.parametrize("library", sorted(CONFINED))
def test_each_library_stays_in_its_layer(library):
    users = {
        module
        for module, names in MODULES.items()
        if any(n == library or n.startswith(library + ".") for n in names)
    }
    assert users <= CONFINED[library], f"{library} imported by {sorted(users - CONFINED[library])}"


def test_the_pure_core_knows_no_framework():
    core = {"status", "payload", "clock", "keys", "errors", "records", "expected", "outages"}
    frameworks = {"falcon", "pony", "waitress", "prometheus_client", "yaml"}
    for module in core:
        leaked = {n.split(".")[0] for n in MODULES[module]} & frameworks
        assert not leaked, f"{module} imports {leaked}"
