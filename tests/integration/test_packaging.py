"""Every top-level package of the checkout is installed: the CLI must import outside the checkout too
(a package missing from ``[tool.setuptools.packages.find]`` passes the tests run from the repository root)."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_every_top_level_package_is_included() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name != "tests")
    missing = [name for name in packages if f"{name}*" not in include]
    assert not missing, f"packages not installed by pyproject.toml: {missing}"
