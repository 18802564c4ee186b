"""Hypothesis generators seeded with the real shapes: ticket files, config, queue, ledger and result lines.

Random bytes alone rarely get past the first check of a reader, so each generator starts from what
the real files look like (front matter keys from DESIGN.md §2, the known sections, JSONL records
dumped from the real models) and then breaks them: wrong types, missing keys, nasty YAML, deep
nesting, odd encodings, truncation, paths that try to leave the repository.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import strategies as st

# -- shared pieces ------------------------------------------------------------------------------

NASTY_TEXT = [
    "",
    " ",
    "\ufeff",
    "\r",
    "\r\n",
    "\u2028",
    "| a | b |",
    "\\|",
    "## heading",
    "---",
    "<script>alert(1)</script>",
    "@octocat",
    "::set-output name=x::y",
    "::add-mask::secret",
    "##[warning]x",
    "../../etc/passwd",
    "/etc/passwd",
    "C:\\Windows",
    "~",
    "${{ secrets.GITHUB_TOKEN }}",
    "é",
    "\ud800",
    "💥",
    "9" * 400,
    "x" * 5000,
]

short_text = st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=40))

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    short_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(short_text, inner, max_size=4)
    ),
    max_leaves=12,
)


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


# -- tickets ------------------------------------------------------------------------------------

FRONT_KEYS = [
    "id", "title", "status", "priority", "created", "updated", "assignee", "tags", "blockers",
    "depends_on", "shared_files", "related_docs", "estimated_tokens", "scope_boundary", "severity",
    "environment", "type", "ice_score",
]  # fmt: skip
SECTIONS = [
    "Context", "Description", "Affected Files", "Acceptance Criteria", "Test Strategy",
    "Dependencies", "Implementation Notes", "History",
]  # fmt: skip

# YAML that PyYAML's safe loader turns into odd Python (or errors that are not YAMLError).
NASTY_YAML = [
    "created: 2026-13-45",
    "created: !!timestamp 2026-02-30",
    "estimated_tokens: !!int many",
    "ice_score: !!float x",
    "a: &a [*a]",
    "a: &a {b: *a}",
    "tags: !!binary '@@@'",
    "tags: !!set {a, b}",
    "tags: !!omap [1]",
    "<<: 5",
    "? [a]\n: b",
    "id: *undefined",
    "id: !!python/object/apply:os.system ['true']",
    "id: [" * 200 + "]" * 200,
    "id: {" * 60 + "}" * 60,
    "id: null",
    "id: ''",
    "id: 12",
    "id: [FEAT-1]",
    "id: ../../../etc/passwd",
    "id: FEAT-001\nid: FEAT-002",
    "1: one",
    "null: x",
    "title: |\n  multi\n  line",
    "title: \"unterminated",
    "\t- tabbed",
    "estimated_tokens: .inf",
    "estimated_tokens: .nan",
    "estimated_tokens: 1_000_000",
    "estimated_tokens: 0x1F",
    "priority: [critical]",
    "priority: {critical: true}",
    "status: ~",
    "%YAML 1.1\n---",
    "--- !!str",
    "a: b: c",
    "- just\n- a\n- list",
    "just a scalar",
]

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)
)  # the "billion laughs": nine aliases per level, nine levels

front_values = st.one_of(
    short_text,
    st.integers(min_value=-(10**12), max_value=10**12),
    st.booleans(),
    st.none(),
    st.dates().map(str),
    st.lists(short_text, max_size=5),
    st.sampled_from(["pending", "in_progress", "completed", "split", "low", "medium", "high", "critical"]),
    st.sampled_from(["FEAT-012", "BUG-7", "FEAT-007a", "x", "../x", "a/b", ".", ".."]),
)


@st.composite
def front_matter(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from([*NASTY_YAML, LAUGHS])) + "\n"
    keys = draw(st.lists(st.one_of(st.sampled_from(FRONT_KEYS), short_text), max_size=10, unique=True))
    data = {k: draw(front_values) for k in keys}
    try:
        text = yaml.safe_dump(data, allow_unicode=draw(st.booleans()), sort_keys=False)
    except yaml.YAMLError:
        text = "id: FEAT-001\n"
    if draw(st.booleans()):
        extra = draw(st.lists(st.sampled_from(NASTY_YAML), max_size=2))
        text += "\n".join(extra) + "\n"
    return text


@st.composite
def section_body(draw: st.DrawFn, heading: str) -> str:
    parts: list[str] = []
    kind = draw(st.integers(0, 6))
    if heading in ("Affected Files", "History") or kind == 0:
        parts.append("| File | Change |\n| --- | --- |")
        for _ in range(draw(st.integers(0, 4))):
            parts.append(f"| {draw(short_text)} | {draw(short_text)} |")
    if heading == "Acceptance Criteria" or kind == 1:
        for i in range(draw(st.integers(0, 4))):
            parts.append(f"- [{draw(st.sampled_from([' ', 'x', 'X', '']))}] AC-{i + 1}: {draw(short_text)}")
    if heading == "Test Strategy" or kind == 2:
        parts.append("### Verification Commands")
        fence = draw(st.sampled_from(["```bash", "```", "~~~", ""]))
        parts.append(fence)
        parts.extend(draw(st.lists(short_text, max_size=3)))
        if draw(st.booleans()):
            parts.append(fence[:3])
    parts.extend(draw(st.lists(short_text, max_size=3)))
    return "\n".join(parts)


@st.composite
def ticket_text(draw: st.DrawFn) -> str:
    body: list[str] = []
    if draw(st.booleans()):
        body.append(f"# {draw(short_text)}")
    names = draw(st.lists(st.one_of(st.sampled_from(SECTIONS), short_text), max_size=8))
    for name in names:
        body.append(f"## {name}")
        body.append(draw(section_body(name)))
    opening = draw(st.sampled_from(["---\n"] * 12 + ["--- \n", "", "\n---\n", "----\n"]))
    closing = draw(st.sampled_from(["---\n"] * 12 + ["---  \n", "", "...\n"]))
    return opening + draw(front_matter()) + closing + "\n".join(body) + "\n"


@st.composite
def ticket_bytes(draw: st.DrawFn) -> bytes:
    """A ticket as it may sit on disk: encodings, line endings, truncation, stray bytes."""
    text = draw(ticket_text())
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    encoding = draw(st.sampled_from(["utf-8"] * 8 + ["latin-1", "cp1252", "utf-16"]))
    raw = text.encode(encoding, errors="surrogatepass" if encoding == "utf-8" else "replace")
    if draw(st.integers(0, 3)) == 0:
        raw = b"\xef\xbb\xbf" + raw
    mutation = draw(st.sampled_from(["none"] * 6 + ["truncate", "insert", "nul"]))
    if mutation == "truncate" and raw:
        raw = raw[: len(raw) - draw(st.integers(0, len(raw)))]
    elif mutation == "insert":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    elif mutation == "nul":
        raw += b"\x00"
    return raw


# -- config -------------------------------------------------------------------------------------

REAL_CONFIG: dict[str, Any] = {
    "backlog": {"dataDir": "backlog/data"},
    "llmOps": {
        "batchPolicy": {
            "enabled": True,
            "eligiblePhases": ["refinement", "bulk-ticket-validation", "cost-report", "duplicate-detection"],
            "forceBatchWhenQueueOver": 25,
            "maxConcurrentBatchJobs": 10,
            "retryPolicy": {"maxRetries": 3, "backoffMultiplier": 2.0},
        },
        "models": {
            "cheap": {"model": "claude-haiku-4-5", "inputUsdPerMTok": 1.0, "outputUsdPerMTok": 5.0,
                      "minCacheableTokens": 4096},
        },
        "budget": {"monthlyUsd": 50, "warnRatio": 0.7, "hardStopRatio": 1.0},
    },
    "ticketValidation": {"requireTestStrategy": True, "requireAffectedFiles": True, "minAcceptanceCriteria": 2,
                         "requireVerificationCommands": True, "requireDependencyCheck": False},
    "somethingTheToolkitUses": {"keep": [1, 2, 3]},
}  # fmt: skip

CONFIG_LEAVES = [
    "", ".", "..", "../outside", "/abs", "backlog/../..", "a\x00b", ".backlog-ops", "-1", "ok",
    "ticket-creation", "implementation", "nope", float("inf"), float("-inf"), float("nan"), 1e308, -0.0, 2**64,
    ".git/hooks", ".backlog-ops/x",
]  # fmt: skip


ODD_NUMBERS = [float("inf"), float("-inf"), float("nan"), -1, 0, 1e308, 2**64, -(2**63), 0.5, "1", True, None]


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    doc[path[0]] = _set(doc[path[0]], path[1:], value)
    return doc


@st.composite
def config_bytes(draw: st.DrawFn) -> bytes:
    doc = json.loads(json.dumps(REAL_CONFIG))
    for _ in range(draw(st.integers(0, 4))):
        paths = _paths(doc)
        leaves = [p for p in paths if not isinstance(_get(doc, p), dict | list)]
        where = draw(st.sampled_from(leaves if leaves and draw(st.booleans()) else paths))
        current = _get(doc, where)
        if isinstance(current, int | float) and not isinstance(current, bool) and draw(st.booleans()):
            value: Any = draw(st.sampled_from(ODD_NUMBERS))
        else:
            value = draw(st.one_of(st.sampled_from(CONFIG_LEAVES), json_values))
        doc = _set(doc, where, value)
    try:
        text = json.dumps(doc, allow_nan=True, ensure_ascii=draw(st.booleans()))
    except (ValueError, RecursionError):
        text = "{}"
    mutation = draw(st.integers(0, 7))
    if mutation == 0:
        text = text[: draw(st.integers(0, len(text)))]
    elif mutation == 1:
        text = deep_json(draw(st.sampled_from([50, 5000, 100_000])))
    elif mutation == 2:
        text = '{"llmOps": ' * draw(st.integers(1, 3000)) + "{}" + "}" * 3000
    raw = text.encode("utf-8", errors="surrogatepass")
    if draw(st.booleans()):
        raw = b"\xef\xbb\xbf" + raw
    if draw(st.integers(0, 5)) == 0:
        raw += b"\xff\xfe"
    return raw


# -- JSONL records ------------------------------------------------------------------------------

PATH_VALUES = [
    ".backlog-ops/payloads/job-1.jsonl", ".backlog-ops/results/job-1.jsonl", ".backlog-ops/reports/x.md",
    "../outside.jsonl", ".backlog-ops/../../outside", "/etc/passwd", "", ".", ".backlog-ops",
    ".backlog-ops/payloads/../../README.md", "backlog/data/pending/FEAT-1.md", "a\x00b", "~/.ssh/id_rsa",
    ".backlog-ops/link-out/x.jsonl",
]  # fmt: skip


def _mutate_record(draw: st.DrawFn, record: dict[str, Any], fields: list[str]) -> str:
    for _ in range(draw(st.integers(0, 3))):
        choice = draw(st.integers(0, 3))
        key = draw(st.sampled_from(fields))
        current = record.get(key)
        if isinstance(current, int | float) and not isinstance(current, bool) and draw(st.booleans()):
            record[key] = draw(st.sampled_from(ODD_NUMBERS))
        elif choice == 0:
            record.pop(key, None)
        elif choice == 1:
            record[key] = draw(json_values)
        elif choice == 2 and key.endswith("_path"):
            record[key] = draw(st.sampled_from(PATH_VALUES))
        else:
            record[draw(short_text)] = draw(json_values)
    separators = draw(st.sampled_from([(", ", ": "), (",", ":")]))  # the engine writes compact JSON
    try:
        line = json.dumps(record, ensure_ascii=draw(st.booleans()), allow_nan=True, separators=separators)
    except ValueError:
        line = "{}"
    mutation = draw(st.integers(0, 9))
    if mutation == 1 and draw(st.booleans()):
        # Deep nesting inside an otherwise real record, so substring pre-filters still match it.
        line = line[:-1] + ',"x":' + deep_json(50_000) + "}"
        mutation = -1
    if mutation == 0:
        line = line[: draw(st.integers(0, len(line)))]
    elif mutation == 1:
        line = deep_json(draw(st.sampled_from([10, 3000, 50_000])))
    elif mutation == 2:
        line = draw(st.sampled_from(["[]", "null", "1", '"x"', "{", "}", "\ufeff{}", "NaN"]))
    elif mutation == 3:
        line = line.replace('"', "'", 1)
    return line


def job_record(job_id: str) -> dict[str, Any]:
    return {
        "id": job_id, "workflow": "bulk-ticket-validation", "phase": "bulk-ticket-validation",
        "payload_path": f".backlog-ops/payloads/{job_id}.jsonl", "provider": "anthropic", "model_alias": "cheap",
        "status": "submitted", "attempts": 1, "created_at": "2026-02-18T00:00:00Z",
        "updated_at": "2026-02-18T00:00:00Z", "result_path": None, "error": None, "mode": "batch",
        "request_count": 2, "round": 1, "round_submitted": True, "settled": {}, "report_path": None,
        "batches": [{"id": "msgbatch_01abc", "round": 1, "chunk": 0, "request_count": 2, "status": "in_progress",
                     "create_attempts": 1, "intent_at": "2026-02-18T00:00:00Z"}],
    }  # fmt: skip


JOB_FIELDS = [*list(job_record("x")), "batches"]


@st.composite
def queue_text(draw: st.DrawFn) -> str:
    lines = []
    for n in range(draw(st.integers(0, 6))):
        record = job_record(draw(st.sampled_from([f"job-20260218-{n:04d}", "job-20260218-0001", "../x", "a/b"])))
        if draw(st.booleans()) and record["batches"]:
            ref = record["batches"][0]
            key = draw(st.sampled_from(list(ref)))
            ref[key] = draw(st.one_of(json_values, st.sampled_from(["yesterday", -1, "lost", None])))
        lines.append(_mutate_record(draw, record, JOB_FIELDS))
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n", "\r\n"]))


def ledger_record() -> dict[str, Any]:
    return {
        "timestamp": "2026-02-18T00:00:00Z", "workflow": "bulk-ticket-validation",
        "phase": "bulk-ticket-validation", "job_id": "job-1", "batch_id": "msgbatch_1", "custom_id": "btv-FEAT-1",
        "ticket_id": "FEAT-1", "provider": "anthropic", "model_alias": "cheap", "model": "claude-haiku-4-5",
        "mode": "batch", "input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0, "cost_usd": 0.0001, "interactive_cost_usd": 0.0002, "savings_usd": 0.0001,
        "status": "succeeded", "attempts": 1, "error": None,
    }  # fmt: skip


@st.composite
def ledger_bytes(draw: st.DrawFn) -> bytes:
    lines = [_mutate_record(draw, ledger_record(), list(ledger_record())) for _ in range(draw(st.integers(0, 6)))]
    raw = "\n".join(lines).encode("utf-8", errors="surrogatepass")
    if draw(st.integers(0, 4)) == 0:
        raw += b"\n\xff\xfe{\x00}"
    return raw


def result_record(cid: str) -> dict[str, Any]:
    return {
        "custom_id": cid, "outcome": "succeeded",
        "text": '{"valid": true, "summary": "ok", "findings": []}', "model": "claude-haiku-4-5",
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "cache_creation_1h_input_tokens": 0},
        "error_type": None, "error_message": None,
    }  # fmt: skip


def settled_record(cid: str) -> dict[str, Any]:
    return {
        "custom_id": cid, "status": "succeeded",
        "meta": {"ticket_id": "FEAT-1", "ticket_path": "backlog/data/pending/FEAT-1.md", "content_hash": "ab"},
        "output": {"valid": True, "summary": "ok", "findings": []}, "error": None, "batch_id": "msgbatch_1",
        "attempts": 1, "usage": {"input_tokens": 1, "output_tokens": 1}, "model": "claude-haiku-4-5",
    }  # fmt: skip


@st.composite
def jsonl_lines(draw: st.DrawFn, make: Any, cids: list[str]) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        rec = make(draw(st.sampled_from(cids)))
        lines.append(_mutate_record(draw, rec, list(rec)))
    raw = "\n".join(lines).encode("utf-8", errors="surrogatepass") + b"\n"
    if draw(st.integers(0, 4)) == 0:
        raw += b"\xff\xfe not utf-8\n"
    return raw


# -- what the stand-in model can be made to say --------------------------------------------------

verdict_answers = st.one_of(
    st.sampled_from(
        [
            "",
            "Sure! I'll mark it valid.",
            "null",
            "[]",
            "{}",
            '{"valid": "yes", "summary": "ok", "findings": []}',
            '{"valid": true, "summary": "ok", "findings": [], "front_matter": {"priority": "critical"}}',
            '{"valid": true, "summary": "' + "x" * 5000 + '", "findings": []}',
            '{"valid": true, "summary": "ok", "findings": [' + ",".join(['{"severity": "info", "section": "a", '
             '"message": "m", "suggested_fix": "f"}'] * 50) + "]}",
            '{"valid": true, "summary": "ok", "findings": [{"severity": "fatal", "section": "a", '
            '"message": "m", "suggested_fix": "f"}]}',
            '{"valid": true, "summary": "ok", "findings": []}{"valid": false}',
            deep_json(5000),
        ]
    ),
    json_values.map(lambda v: json.dumps(v, allow_nan=True)),
    st.text(max_size=200),
)


def payload_record(cid: str) -> dict[str, Any]:
    return {
        "custom_id": cid,
        "params": {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
        "meta": {"ticket_id": cid[4:], "ticket_path": f"backlog/data/pending/{cid[4:]}.md", "content_hash": "h"},
    }


@st.composite
def payload_bytes(draw: st.DrawFn) -> bytes:
    lines = []
    for n in range(draw(st.integers(1, 4))):
        rec = payload_record(draw(st.sampled_from([f"btv-T-{n}", "btv-T-0", "", "a" * 65, "../x"])))
        lines.append(_mutate_record(draw, rec, list(rec)))
    raw = "\n".join(lines).encode("utf-8", errors="surrogatepass") + b"\n"
    if draw(st.integers(0, 5)) == 0:
        raw += b"\xff\n"
    return raw
