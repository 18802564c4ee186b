"""Part 3 of #7: text from a model or a ticket cannot break the Markdown it lands in, or a runner's log.

The properties run against the helpers in ``batch_ops.markdown`` (which every report, alert issue and
job summary is meant to use) and check the result with a real CommonMark + GFM-tables parser.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token

from batch_ops.markdown import cell, code, inline, neutralise_workflow_commands
from tests.hostile import strategies as s

MD = MarkdownIt("commonmark").enable("table")

MARKDOWN_NASTY = [
    "\\", "\\\\|", "]]", "[x](javascript:alert(1))", "![p](https://evil.example/p.png)", "<!--", "-->",
    "<img src=x onerror=alert(1)>", "&lt;", "#12", "GH-7", "@org/team", "`", "```", "~~~", "**", "\x1b[31m",
    "\u202e", "1. ", "- ", "> ", "===", "| --- |", "\n::set-output name=a::b", "\r::add-mask::x",
    "\n  ##[error]x", "::stop-commands::tok",
]  # fmt: skip
HOSTILE = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(st.sampled_from(s.NASTY_TEXT + MARKDOWN_NASTY), st.text(max_size=10)), max_size=12).map(
        "".join
    ),
)


def _walk(tokens: list[Token]) -> list[Token]:
    out: list[Token] = []
    for tok in tokens:
        out.append(tok)
        if tok.children:
            out.extend(_walk(tok.children))
    return out


def _unsafe(tokens: list[Token]) -> list[str]:
    bad = {"html_inline", "html_block", "link_open", "image", "heading_open", "blockquote_open", "hr",
           "bullet_list_open", "ordered_list_open", "fence", "code_block", "table_open"}  # fmt: skip
    return [t.type for t in _walk(tokens) if t.type in bad]


def _visible(tokens: list[Token]) -> str:
    return "".join(t.content for t in _walk(tokens) if t.type in ("text", "code_inline"))


@given(HOSTILE)
def test_inline_text_is_one_plain_paragraph(text: str) -> None:
    out = inline(text)
    assert "\n" not in out and "\r" not in out
    tokens = MD.parse(out)
    assert _unsafe(tokens) == [], (text, out)
    assert not re.search(r"(?<![\w`])@[A-Za-z0-9]", _visible(tokens))  # no mention survives
    assert not re.search(r"(?<![\w&])#\d", _visible(tokens))  # no issue cross-reference


@given(HOSTILE, HOSTILE)
def test_a_cell_stays_in_its_column(left: str, right: str) -> None:
    table = f"| A | B | C |\n| --- | --- | --- |\n| {cell(left)} | {cell(right)} | END |\n"
    tokens = MD.parse(table)
    cells = [t for t in tokens if t.type == "inline"][3:]
    assert len(cells) == 3 and cells[2].content == "END", (left, right, table)
    assert _unsafe(tokens) == ["table_open"], (left, right)


@given(HOSTILE)
def test_inline_in_a_heading_and_a_list_item_stays_there(text: str) -> None:
    doc = f"## {inline(text, limit=80)}\n\n- model: {inline(text)}\n\nAFTER\n"
    tokens = MD.parse(doc)
    types = [t.type for t in tokens]
    assert types.count("heading_open") == 1 and types.count("bullet_list_open") == 1
    assert tokens[-2].content == "AFTER"


@given(HOSTILE)
def test_code_span_cannot_be_closed_early(text: str) -> None:
    doc = f"| path |\n| --- |\n| {code(text)} |\n"
    tokens = MD.parse(doc)
    spans = [t for t in _walk(tokens) if t.type == "code_inline"]
    if _one_line(text):
        assert len(spans) == 1 and _unsafe(tokens) == ["table_open"], (text, doc)


def _one_line(text: str) -> str:
    return " ".join(text.split())


@given(HOSTILE)
def test_nothing_printed_can_act_as_a_workflow_command(text: str) -> None:
    out = neutralise_workflow_commands(text)
    for line in re.split(r"\r\n|\r|\n", out):
        stripped = line.lstrip()
        assert not stripped.startswith("::") and not stripped.startswith("##["), (text, out)
    assert "\x1b" not in out


def test_examples_read_well() -> None:
    assert inline("a | b") == "a \\| b"
    assert inline("ping @octocat about #12") == "ping @\u200boctocat about #\u200b12"
    assert inline("<script>x</script>") == "&lt;script&gt;x&lt;/script&gt;"
    assert inline("## Injected") == "\\## Injected"
    assert inline("[click](http://x)") == "\\[click\\](http://x)"
    assert inline("C:\\dir|x") == "C:\\\\dir\\|x"
    assert cell("") == " "
    assert code("a`b") == "``a`b``"
    assert neutralise_workflow_commands("ok\n::add-mask::x\r::set-output name=a::b") == (
        "ok\n:\u200b:add-mask::x\r:\u200b:set-output name=a::b"
    )
    assert neutralise_workflow_commands("##[warning]x") == "#\u200b#[warning]x"


def test_warnings_on_stderr_are_neutralised(capsys: Any) -> None:
    from batch_ops.commands._common import warn

    warn("ticket backlog/data/pending/x.md: bad\n::add-mask::leak\r\n::set-output name=x::y\x1b[2K")
    err = capsys.readouterr().err
    assert "\n::" not in err and "\r::" not in err and "\x1b" not in err
