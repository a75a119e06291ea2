"""Lazy package attributes (PEP 562), shared by the `hf_textgen.data` and `hf_textgen.training` packages.

A package lists `name -> defining module`; each name is imported on first use, so importing one light module of the
package (e.g. its argument dataclasses, for `hf-textgen <command> --help`) does not import all of it. This module
imports nothing heavy itself.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_attributes(package: str, sources: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list]]:
    """Build a package's module-level `__getattr__` and `__dir__` for names imported on first use.

    Args:
        package: The package's `__name__`.
        sources: Each public name -> the dotted module that defines it.

    Returns:
        `(__getattr__, __dir__)` to assign at the package's top level. `__getattr__` imports the defining module,
        caches the value in the package's namespace (later look-ups skip it) and raises `AttributeError` for names
        not in `sources`.
    """

    def __getattr__(name: str) -> object:
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(sources[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *sources})

    return __getattr__, __dir__
