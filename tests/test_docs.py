"""The README documents every option and exit code the code defines."""

from __future__ import annotations

import re
from pathlib import Path

from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import EXIT_CODES

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_every_option_is_documented_with_its_default() -> None:
    for name in StyleConfig.field_names():
        flag = "--" + name.replace("_", "-")
        row = re.search(rf"^\| `{re.escape(flag)}` \| ([^|]*) \|", README, re.M)
        assert row, f"{flag} missing from the README's option table"
        default = getattr(StyleConfig(), name)
        documented = row.group(1).strip()
        if isinstance(default, bool):
            assert documented == ("on" if default else "off"), flag
        elif default is None or default == ():
            assert documented == "—", flag
        elif isinstance(default, float):
            assert float(documented) == default, flag
        else:
            assert documented == str(default), flag


def test_every_exit_code_is_documented() -> None:
    for code in EXIT_CODES:
        assert re.search(rf"^\| {code} \|", README, re.M), code


def test_readme_shows_the_setup_and_test_commands() -> None:
    assert "make install" in README and "make test" in README
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert "make install" in ci and "make test" in ci


def test_the_layout_map_names_every_module() -> None:
    """The README's layout map stays true: every module of the package is named in it."""
    block = README[README.index("## Project layout"):README.index("## Development")]
    package = Path(__file__).parents[1] / "clipstyler_opt"
    missing = [str(path.relative_to(package)) for path in package.rglob("*.py")
               if path.name not in ("__main__.py",) and path.stem != "__init__" and path.name not in block]
    assert not missing, f"modules missing from the README's layout map: {missing}"
