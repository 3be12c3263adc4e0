"""The examples in Lesson 3.3's docstrings run and print what they say (reference modules)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["solutions.heads", "solutions.model", "solutions.diagnostics"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no docstring examples"
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed (run python -m doctest {name.replace('.', '/')}.py)"
