"""Replay the worst inputs found by the fuzzers (``tests/fixtures/hostile/``) through the same properties.

A file named ``crash-*`` once crashed its reader with a traceback; it must now give the project's own
error (or be reported and skipped). ``tests/fixtures/hostile/README.md`` says what each one found.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batch_ops.backlog import parse_ticket
from batch_ops.errors import TicketError
from tests.hostile import test_readers_fuzz as fuzz

FIXTURES = Path(__file__).parent.parent / "fixtures" / "hostile"


def _files(kind: str) -> list[Path]:
    return sorted((FIXTURES / kind).glob("*")) if (FIXTURES / kind).is_dir() else []


def _inner(test: Any) -> Callable[..., None]:
    inner: Callable[..., None] = test.hypothesis.inner_test
    return inner


@pytest.mark.parametrize("path", _files("tickets"), ids=lambda p: p.name)
def test_ticket_fixture(path: Path) -> None:
    raw = path.read_bytes()
    _inner(fuzz.test_ticket_reader_returns_a_ticket_or_a_ticket_error)(raw)
    if path.name.startswith("crash-") and not path.name.startswith("crash-triage-"):
        # Unusable tickets; a crash-triage-* one parses and once crashed triage instead.
        with pytest.raises(TicketError):
            parse_ticket(raw, f"backlog/data/pending/{path.name}")


def test_every_ticket_fixture_in_one_scan() -> None:
    _inner(fuzz.test_scan_reports_bad_tickets_and_keeps_the_rest)(
        [p.read_bytes() for p in _files("tickets")], [p.stem for p in _files("tickets")]
    )


@pytest.mark.parametrize("path", _files("config"), ids=lambda p: p.name)
def test_config_fixture(path: Path) -> None:
    _inner(fuzz.test_config_reader_returns_a_config_or_one_problem_per_key_path)(path.read_bytes())


@pytest.mark.parametrize("path", _files("queue"), ids=lambda p: p.name)
def test_queue_fixture(path: Path) -> None:
    _inner(fuzz.test_queue_reader_loads_jobs_or_quarantines_the_line)(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", _files("ledger"), ids=lambda p: p.name)
def test_ledger_fixture(path: Path) -> None:
    _inner(fuzz.test_ledger_reader_reports_problems_and_skips)(path.read_bytes())


@pytest.mark.parametrize("path", _files("settled"), ids=lambda p: p.name)
def test_settled_fixture(path: Path) -> None:
    _inner(fuzz.test_settled_results_reader_skips_what_does_not_parse)(path.read_bytes())


@pytest.mark.parametrize("path", _files("results"), ids=lambda p: p.name)
def test_results_fixture(path: Path) -> None:
    _inner(fuzz.test_reconcile_settles_a_results_file_with_broken_lines)(path.read_bytes())


@pytest.mark.parametrize("path", _files("answers"), ids=lambda p: p.name)
def test_answer_fixture(path: Path) -> None:
    _inner(fuzz.test_validation_answer_is_parsed_or_refused_with_a_reason)(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", _files("merge"), ids=lambda p: p.name)
def test_merge_fixture(path: Path) -> None:
    from tests.hostile import test_merges_fuzz as merges

    text = path.read_text(encoding="utf-8")
    check = _inner(merges.test_queue_merge_keeps_every_remote_line_or_record)
    check("", text, "")
    check("", "", text)
    check(text, text, text)
