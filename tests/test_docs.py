"""The documentation points only at tests that exist: a rule → test link cannot go stale."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    # Each folder's own README; not .pytest_cache's, which the first test run writes.
    *sorted(path for path in ROOT.glob("*/README.md") if not path.parent.name.startswith(".")),
]
TEST_REFERENCE = re.compile(r"(?<![\w/])((?:\w+/)*tests/[\w/]+\.py)::(test_\w+)")


def defined_tests(path: Path) -> set[str]:
    """Return the names of the test functions a test module defines."""
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_test_a_document_names_exists(document):
    references = TEST_REFERENCE.findall(document.read_text())
    missing = [
        f"{module}::{name}"
        for module, name in references
        if not (ROOT / module).is_file() or name not in defined_tests(ROOT / module)
    ]

    assert missing == []


def test_the_security_rules_name_their_tests():
    references = TEST_REFERENCE.findall((ROOT / "docs" / "security.md").read_text())

    assert len(references) >= 50


def test_the_readmes_callback_is_the_real_one():
    """Every line of the README's /callback excerpt is a line of app/views.py."""
    readme = (ROOT / "README.md").read_text()
    excerpt = readme.split("```python\n", 1)[1].split("```", 1)[0]
    views = {
        line.split("  #")[0].strip() for line in (ROOT / "app/views.py").read_text().splitlines()
    }
    for line in excerpt.splitlines():
        assert line.split("  #")[0].strip() in views, line
