"""Cheap checks that keep ``make docs`` (Sphinx with warnings as errors) green.

The documentation build itself runs in CI (``make docs``); these tests catch
the two usual ways new code breaks it, without Sphinx: an example whose
docstring the gallery cannot title, and a public object missing from the API
reference.
"""

import ast
import re
from pathlib import Path

import pytest

import sknngp

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_docstring_has_a_gallery_title(path):
    doc = ast.get_docstring(ast.parse(path.read_text()), clean=False)
    assert doc, f"{path.name}: sphinx-gallery needs a module docstring"
    lines = doc.strip("\n").splitlines()
    assert len(lines) >= 2 and re.fullmatch(r"=+", lines[1]), (
        f"{path.name}: the docstring must open with a title underlined by '=' "
        "(sphinx-gallery titles the example with it)"
    )
    assert len(lines[1]) >= len(lines[0]), f"{path.name}: title underline too short"


def test_gallery_has_its_header():
    assert (ROOT / "examples" / "README.rst").exists()


def test_api_reference_lists_every_public_object():
    api = (ROOT / "docs" / "api.rst").read_text()
    listed = {entry.rsplit(".", 1)[-1] for entry in re.findall(r"^   ([\w.]+)$", api, re.M)}
    missing = sorted(set(sknngp.__all__) - listed)
    assert not missing, f"add {missing} to docs/api.rst"
