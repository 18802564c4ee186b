"""The front-matter fast path gives exactly what yaml.safe_load gives, or declines."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_ops.frontmatter import parse_simple
from batch_ops.testing.ticketgen import generate_backlog
from tests.conftest import SAMPLE

AWKWARD = [
    "id: FEAT-001\ntitle: Plain words here\ntags: [a, b-c, d.e]",
    "a: yes\n", "a: No", "a: on", "a: OFF", "a: null", "a: ~", "a: y", "a: n", "yes: 1", "on: x",
    "a: 012", "a: 0x1F", "a: 4.2", "a: 04.20", "a: -0.5", "a: 1.2.3", "a: 1.", "a: .5", "a: 1e3",
    "a: [1.5, 2]", "a: 1_000", "a: 1.5", "a: -3", "a: 0", "a: +3", "a: .inf",
    "a: 2026-01-14", "a: 2026-13-45", "a: 2026-01-14T10:00:00Z",
    'a: "quoted: text"', "a: 'single'", 'a: "esc\\n"', "a: 'it''s'", 'a: "  padded "',
    "a: b: c", "a: x # comment", "# comment\na: 1", "a:\n  - x\n  - y", "a: [x, [y]]", "a: [x,y]",
    "a: [1, 2026-01-01, yes]", "a: []", "a: {}", "a:", "a: ", "a: &anchor x", "a: *ref", "a: !!str 1",
    "a: x\na: y", "a:  two spaces", "a: trailing ", "\ta: x", " a: x", "a: mobile 4.12 on iOS",
    "a: src/auth/login.ts (modify)", "a: @mention", "a: x, y", "a: <<", "a: =", "a: Null", "a: TRUE",
]  # fmt: skip


@pytest.mark.parametrize("text", AWKWARD)
def test_awkward_front_matter(text: str) -> None:
    fast = parse_simple(text)
    if fast is None:
        return  # declined: the YAML parser decides, errors included
    assert fast == yaml.safe_load(text)


def _front_matters(root: Path) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.md")):
        text = path.read_bytes().decode("utf-8", errors="replace").replace("\r\n", "\n")
        if text.startswith("---\n") and "\n---" in text[3:]:
            out.append(text[4 : text.index("\n---", 3)])
    return out


def test_sample_and_generated_backlogs(tmp_path: Path) -> None:
    generate_backlog(tmp_path, 400, duplicates=10, seed=5, messy=True)
    texts = _front_matters(SAMPLE) + _front_matters(tmp_path)
    accepted = 0
    for text in texts:
        fast = parse_simple(text)
        if fast is None:
            continue
        accepted += 1
        assert fast == yaml.safe_load(text), text
    assert accepted > len(texts) // 2  # the fast path does take the common case


_QUOTE_PIECES = ['"', "'", "x", " ", "\\", ":", "#", "é", "\t", "[", "]", ", ", "1", "-", "yes", "\x7f"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_QUOTE_PIECES), max_size=10), st.sampled_from(['"', "'", "[", "[x, "]))
def test_quoted_values_read_as_yaml_reads_them(parts: list[str], opening: str) -> None:
    # Values that start with a quote (a title) or a list whose item does: the fast path takes them
    # to its quote check first; what it accepts it must read as YAML does.
    text = f"a: {opening}{''.join(parts)}"
    fast = parse_simple(text)
    if fast is not None:
        assert fast == yaml.safe_load(text)
    assert (fast is None) == (parse_simple(text + "\nb: x") is None)
