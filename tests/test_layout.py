"""The tree keeps its design: data flows one way, from the pages down to storage and the client.

`ls app/` is the map (README, "Layout"). Each unit below is a module or a package of
app/; a unit may import only itself and the units of lower layers, and the three
features never import one another: what they share lies below them.
"""

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"

LAYERS = (
    # What anything may use: the copyable client, log lines, the session's keys.
    {"vcita", "logs", "session_keys"},
    # What the app keeps, and the app's one vcita client with its signing keys.
    {"storage", "vcita_client", "signing_keys"},
    # The features.
    {"connect", "app_market", "token_use"},
    # What every page passes through: settings, error pages, headers and CSRF, filters,
    # the page's language.
    {"config", "errors", "security", "formatting", "languages"},
    # The pages.
    {"views"},
    # The factory.
    {"__init__"},
)
FEATURES = LAYERS[2]


def unit_of(module: str) -> str:
    """Return the unit of a module named relative to app/ ("connect.flows" -> "connect")."""
    return module.split(".")[0] or "__init__"


def layer_of(unit: str) -> int:
    return next(number for number, layer in enumerate(LAYERS) if unit in layer)


def imported_units(path: Path, source: str | None = None) -> set[str]:
    """Return the units of app/ that the module at `path` (its text: `source`) imports."""
    package = path.relative_to(APP).with_suffix("").parts[:-1]
    units = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):  # import app.views: "app", ".", "views"
            names = [alias.name.partition(".") for alias in node.names]
            units |= {unit_of(module) for top, _, module in names if top == "app"}
        elif isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            names = [node.module] if node.module else [alias.name for alias in node.names]
            units |= {unit_of(".".join([*base, name])) for name in names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("app."):
            units.add(unit_of(node.module.removeprefix("app.")))
        elif isinstance(node, ast.ImportFrom) and node.module == "app":
            units |= {alias.name for alias in node.names}
    return units


MODULES = sorted(APP.rglob("*.py"))


def test_every_module_of_app_belongs_to_a_layer():
    units = {unit_of(".".join(path.relative_to(APP).with_suffix("").parts)) for path in MODULES}

    assert units == set().union(*LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(APP)))
def test_a_module_imports_only_its_own_unit_and_the_layers_below(path):
    own = unit_of(".".join(path.relative_to(APP).with_suffix("").parts))
    above_or_beside = {
        unit for unit in imported_units(path) - {own} if layer_of(unit) >= layer_of(own)
    }

    assert above_or_beside == set()


def test_the_copyable_client_imports_nothing_of_the_app():
    assert imported_units(APP / "vcita.py") == set()


@pytest.mark.parametrize(
    ("source", "units"),
    [
        ("import app.views", {"views"}),
        ("import app.connect.flows as flows", {"connect"}),
        ("import app", {"__init__"}),
        ("import logging, application", set()),
        ("from app.token_use import ending", {"token_use"}),
        ("from ..storage import database", {"storage"}),
        ("from . import pages", {"connect"}),
    ],
)
def test_the_layer_check_sees_every_way_a_module_imports(source, units):
    assert imported_units(APP / "connect" / "flows.py", source) == units
