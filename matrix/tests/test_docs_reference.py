"""docs/configuration.md lists every ValkeyCache argument and every VALKEY_* variable, and nothing else.

The page's tables are parsed: the two argument tables (positional-or-keyword, then keyword-only) against
``inspect.signature(ValkeyCache.__init__)`` (names, kinds, defaults), the variable table against
``emmett_valkey.ENV_VARIABLES`` (names, the argument each sets, the default shown).
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
from emmett_valkey import ENV_VARIABLES, ValkeyCache

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
_CODE = re.compile(r"`([^`]*)`")


def tables(text: str) -> list[tuple[str, list[dict[str, str]]]]:
    """Return every table of *text* with the heading it is under: rows as {column: cell}, an escaped pipe as ``|``."""
    out: list[tuple[str, list[dict[str, str]]]] = []
    heading, header, rows = "", None, []
    for line in [*text.splitlines(), ""]:
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if header is None:
                header = cells
            elif not all(set(c) <= {"-", ":", " "} for c in cells):
                assert len(cells) == len(header), f"a row of {len(cells)} cells under {header}: {line}"
                rows.append(dict(zip(header, cells, strict=True)))
        elif header is not None:
            out.append((heading, rows))
            header, rows = None, []
    return out


def code(cell: str) -> str:
    """Return the first code span of a cell (what the tables name)."""
    found = _CODE.search(cell)
    assert found, f"no `code` in {cell!r}"
    return found.group(1)


@pytest.fixture(scope="module")
def page() -> list[tuple[str, list[dict[str, str]]]]:
    return tables(DOC.read_text(encoding="utf-8"))


def _argument_rows(page: list[tuple[str, list[dict[str, str]]]]) -> list[list[dict[str, str]]]:
    found = [rows for _, rows in page if rows and "argument" in rows[0] and "type" in rows[0]]
    assert len(found) == 2, f"expected two argument tables (positional-or-keyword, keyword-only), found {len(found)}"
    return found


def test_every_argument_is_listed_once_in_its_table(page: list[tuple[str, list[dict[str, str]]]]) -> None:
    """Positional-or-keyword arguments in the first table, in order; the rest (and ``**pool_kwargs``) in the second."""
    params = list(inspect.signature(ValkeyCache.__init__).parameters.values())[1:]  # without self
    positional, keyword = _argument_rows(page)
    shown = lambda p: f"**{p.name}" if p.kind is p.VAR_KEYWORD else p.name  # noqa: E731
    assert [code(r["argument"]) for r in positional] == [
        p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    listed = [code(r["argument"]) for r in keyword]
    taken = [shown(p) for p in params if p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD)]
    assert len(set(listed)) == len(listed), f"listed twice: {sorted(n for n in listed if listed.count(n) > 1)}"
    assert not set(taken) - set(listed), f"arguments the reference lacks: {sorted(set(taken) - set(listed))}"
    assert not set(listed) - set(taken), f"arguments the code lacks: {sorted(set(listed) - set(taken))}"


def test_every_default_is_the_code_default(page: list[tuple[str, list[dict[str, str]]]]) -> None:
    """The default column (its first code span, a Python literal) is the signature's default; meanings are given."""
    params = inspect.signature(ValkeyCache.__init__).parameters
    for rows in _argument_rows(page):
        for row in rows:
            name = code(row["argument"])
            assert row["meaning"], f"{name} has no meaning"
            if name.startswith("**"):
                continue
            assert ast.literal_eval(code(row["default"])) == params[name].default, (
                f"{name}: the reference says {row['default']}, the code {params[name].default!r}")


def test_every_variable_is_listed(page: list[tuple[str, list[dict[str, str]]]]) -> None:
    """One row per ENV_VARIABLES entry and no other, each with the argument it sets and its default."""
    found = [rows for _, rows in page if rows and "variable" in rows[0]]
    assert len(found) == 1, f"expected one variable table, found {len(found)}"
    rows = {code(r["variable"]): r for r in found[0]}
    assert len(rows) == len(found[0]), "a variable is listed twice"
    assert not ENV_VARIABLES.keys() - rows, f"variables the reference lacks: {sorted(ENV_VARIABLES.keys() - rows)}"
    assert not rows.keys() - ENV_VARIABLES, f"variables the code lacks: {sorted(rows.keys() - ENV_VARIABLES)}"
    params = inspect.signature(ValkeyCache.__init__).parameters
    for name, (argument, default) in ENV_VARIABLES.items():
        assert code(rows[name]["argument"]) == argument, name
        assert argument in params, f"{name} sets {argument}, which ValkeyCache does not take"
        assert rows[name]["default"].replace("`", "").split()[0] == default.split()[0], (
            f"{name}: the reference says {rows[name]['default']}, the code {default}")
        assert rows[name]["meaning"], name


def test_the_parser_reads_what_it_checks() -> None:
    """A table with an escaped pipe, under a heading; a separator row is not a row."""
    parsed = tables("# H\n\n| a | b |\n| --- | --- |\n| `x` | `int \\| None` |\n\ntext\n")
    assert parsed == [("H", [{"a": "`x`", "b": "`int | None`"}])]
    assert code("`int | None` (or not)") == "int | None"
