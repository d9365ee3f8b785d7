"""The English catalogue is complete: every text the console shows in Chinese is given through
``_()`` (templates, Python) or ``T()`` (scripts) and has an English translation with the same
``{names}``; no Chinese text is written anywhere else."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

from console import i18n
from ledger import render

CONSOLE = Path(i18n.__file__).parent
HAN = re.compile(r"[\u4e00-\u9fff]")
#: A call of _ or T with a literal: _("…"), T('…'), _(ROLE[...]) is checked through the maps.
CALL = re.compile(r"""\b[_T]\(\s*(["'])(.*?)(?<!\\)\1""")
#: Texts that stay as they are in both languages.
SAME = {"中文"}


def _names(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def _texts_and_rest(path: Path) -> tuple[set[str], str]:
    source = path.read_text()
    if path.suffix == ".js":
        source = re.sub(r"^\s*//.*$", "", source, flags=re.M)
    texts = {m.group(2) for m in CALL.finditer(source)}
    return texts, CALL.sub("", source)


def _python_texts(path: Path) -> tuple[set[str], list[tuple[int, str]]]:
    """The literals given to a translation (``_``, ``t``, ``speaks(request)``), and any other
    string literal with Chinese in it (docstrings excepted)."""
    tree = ast.parse(path.read_text())
    given: set[str] = set()
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            f = node.func
            if (isinstance(f, ast.Name) and f.id in ("_", "t")) or isinstance(f, ast.Call):
                given.add(node.args[0].value)
                inside.add(id(node.args[0]))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef
                                | ast.ClassDef)
                  and n.body and isinstance(n.body[0], ast.Expr)
                  and isinstance(n.body[0].value, ast.Constant)}
    stray = [(n.lineno, n.value) for n in ast.walk(tree)
             if isinstance(n, ast.Constant) and isinstance(n.value, str) and HAN.search(n.value)
             and id(n) not in inside and id(n) not in docstrings]
    return given, stray


def _all_texts() -> set[str]:
    texts: set[str] = set()
    for path in [*CONSOLE.glob("templates/*.html"), *CONSOLE.glob("static/*.js")]:
        texts |= _texts_and_rest(path)[0]
    for path in CONSOLE.glob("*.py"):
        if path.name != "i18n.py":
            texts |= _python_texts(path)[0]
    # the scorecards' report, which the console shows through its translator
    texts |= _python_texts(Path(render.__file__))[0] | {render.NOTE, render.UNSPECIFIED}
    for vocabulary in (i18n.STATUS, i18n.SEVERITY, i18n.TRANSITION, i18n.ACTION, i18n.ROLE,
                       i18n.PERIOD, i18n.GROUPING, i18n.RESULT, i18n.AUDITED, render.NAMES,
                       render.BY_NAMES, render.PERIOD_NAMES):
        texts |= set(vocabulary.values())
    return texts


def test_the_scan_finds_what_it_should() -> None:
    """The scan is not vacuous: it sees the texts of each kind of file."""
    texts = _all_texts()
    assert {"值班登录", "实时连接正常", "用户名或密码错误", "{n} 级", "待受理"} <= texts
    assert len(texts) > 150


@pytest.mark.parametrize("text", sorted(_all_texts()))
def test_every_text_has_an_english_translation_with_the_same_names(text: str) -> None:
    english = i18n.EN.get(text)
    assert english is not None, f"console/i18n.py: EN lacks {text!r}"
    assert not HAN.search(english), english
    assert _names(english) == _names(text)


def test_the_catalogue_has_nothing_unused() -> None:
    assert set(i18n.EN) - _all_texts() == set()


@pytest.mark.parametrize("path", sorted([*CONSOLE.glob("templates/*.html"),
                                         *CONSOLE.glob("static/*.js")]), ids=lambda p: p.name)
def test_no_chinese_outside_a_translation_in_pages_and_scripts(path: Path) -> None:
    rest = _texts_and_rest(path)[1]
    for text in SAME:
        rest = rest.replace(text, "")
    assert not HAN.findall(rest), [line for line in rest.splitlines() if HAN.search(line)]


@pytest.mark.parametrize("path", sorted(p for p in CONSOLE.glob("*.py") if p.name != "i18n.py"),
                         ids=lambda p: p.name)
def test_no_chinese_outside_a_translation_in_python(path: Path) -> None:
    assert _python_texts(path)[1] == []


def test_the_translator_fills_names_in_either_language() -> None:
    assert i18n.translator("zh")("{n} 级", n=2) == "2 级"
    assert i18n.translator("en")("{n} 级", n=2) == "Level 2"
    assert i18n.translator("en")("不在目录里") == "不在目录里"     # missing: the Chinese shows
    assert i18n.lang_of("fr") == "zh" and i18n.lang_of(None) == "zh"
