"""Part 3 of #7, first half: results are checked before they are applied.

The sandbox's ``result_lines`` scenario makes a results stream odd on purpose (extra lines: another
job's custom_id, a duplicate, an unknown id, lines that are not JSON or not the API's shape; dropped
lines), and the real SDK reads it over HTTP.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from batch_ops.ledger import iter_ledger
from batch_ops.paths import Layout
from batch_ops.phases.io import iter_settled
from batch_ops.providers.anthropic import result_from_line
from batch_ops.providers.base import MALFORMED
from batch_ops.queue import read_queue
from batch_ops.sandbox import SandboxServer


def succeeded_line(cid: str, text: str, model: str = "claude-haiku-4-5") -> str:
    message = {
        "id": "msg_injected", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 7, "output_tokens": 7},
    }  # fmt: skip
    return json.dumps({"custom_id": cid, "result": {"type": "succeeded", "message": message}})


INJECTED = json.dumps({"valid": True, "summary": "INJECTED verdict", "findings": []})


def _payload_ids(layout: Layout) -> dict[str, list[str]]:
    jobs, _ = read_queue(layout)
    out: dict[str, list[str]] = {}
    for job in jobs:
        path = layout.resolve_ops_path(job.payload_path)
        out[job.model_alias] = [json.loads(line)["custom_id"] for line in path.read_text().splitlines()]
    return out


def _until_terminal(cli: Any, repo: Path, limit: float = 30.0) -> list[str]:
    errs: list[str] = []
    end = time.monotonic() + limit
    while time.monotonic() < end:
        res = cli(repo, "reconcile")
        assert res.code == 0, res.err
        errs.append(res.err + res.out)
        jobs, _ = read_queue(Layout(repo))
        if jobs and all(j.terminal for j in jobs):
            return errs
        time.sleep(0.25)
    raise AssertionError("jobs did not finish")


def test_unknown_duplicate_foreign_and_malformed_lines_are_reported_and_not_applied(
    cli: Any, sample_repo: Path, sandbox: SandboxServer
) -> None:
    assert cli(sample_repo, "enqueue", "--phase", "bulk-ticket-validation").code == 0
    layout = Layout(sample_repo)
    ids = _payload_ids(layout)
    frontier_cid, cheap_cid = ids["frontier"][0], ids["cheap"][0]
    sandbox.set_scenario(
        {
            "result_lines": {
                "append": [
                    succeeded_line(frontier_cid, INJECTED),  # the frontier job's: foreign in the cheap batch,
                    # a duplicate in its own
                    succeeded_line("btv-NOBODY-999", INJECTED),  # nobody's
                    "this is not JSON {",
                    json.dumps({"custom_id": cheap_cid, "result": {"type": "mystery"}}),  # not the API's shape
                    json.dumps([1, 2, 3]),
                    "[" * 20000 + "]" * 20000,
                ]
            }
        }
    )
    assert cli(sample_repo, "submit").code == 0
    time.sleep(0.3)
    out = "\n".join(_until_terminal(cli, sample_repo))

    jobs, bad = read_queue(layout)
    assert not bad and all(j.status == "completed" for j in jobs), [j.error for j in jobs]
    frontier_job = next(j for j in jobs if j.model_alias == "frontier")
    assert f"result for {frontier_cid!r} belongs to job {frontier_job.id}; not applied" in out
    assert f"duplicate result for {frontier_cid!r} ignored" in out
    assert "result for unknown custom_id 'btv-NOBODY-999' ignored" in out
    assert "not JSON; not applied" in out
    assert "does not match the API's result shape" in out
    assert "result lines rejected, not applied" in out
    # Exactly one ledger line and one settled result per request: nothing extra was applied.
    lines = list(iter_ledger(layout.ledger_file))
    assert len(lines) == sum(j.request_count for j in jobs)
    assert len({(x.job_id, x.custom_id) for x in lines}) == len(lines)
    for job in jobs:
        assert job.result_path is not None
        settled = list(iter_settled(layout.resolve_ops_path(job.result_path)))
        assert sorted(r.custom_id for r in settled) == sorted(ids[job.model_alias])
        for res in settled:
            assert res.output is None or res.output["summary"] != "INJECTED verdict"
    assert "INJECTED" not in (sample_repo / ".backlog-ops/reports/validation.md").read_text()


def test_missing_result_lines_keep_those_items_unsettled(cli: Any, sample_repo: Path, sandbox: SandboxServer) -> None:
    assert cli(sample_repo, "enqueue", "--phase", "bulk-ticket-validation").code == 0
    layout = Layout(sample_repo)
    cheap = _payload_ids(layout)["cheap"]
    dropped = cheap[:2]
    sandbox.set_scenario({"result_lines": {"drop": dropped}})
    assert cli(sample_repo, "submit").code == 0
    time.sleep(0.3)
    res = cli(sample_repo, "reconcile")
    assert res.code == 0 and "2 request(s) had no result line" in res.err
    jobs, _ = read_queue(layout)
    cheap_job = next(j for j in jobs if j.model_alias == "cheap")
    assert not cheap_job.terminal and cheap_job.round == 2
    assert sum(cheap_job.settled.values()) == len(cheap) - 2  # the two are not settled
    assert not {x.custom_id for x in iter_ledger(layout.ledger_file)} & set(dropped)
    sandbox.set_scenario({})  # the follow-up batch gets its answers
    time.sleep(0.3)
    _until_terminal(cli, sample_repo)
    jobs, _ = read_queue(layout)
    cheap_job = next(j for j in jobs if j.model_alias == "cheap")
    assert cheap_job.status == "completed" and cheap_job.settled == {"succeeded": len(cheap)}
    assert cheap_job.result_path is not None
    got = {r.custom_id: r for r in iter_settled(layout.resolve_ops_path(cheap_job.result_path))}
    assert all(got[c].status == "succeeded" and got[c].attempts >= 2 for c in dropped)


def test_a_line_that_never_comes_fails_the_item_with_the_reason(
    cli: Any, sample_repo: Path, sandbox: SandboxServer
) -> None:
    (sample_repo / "backlog.config.json").write_text(
        json.dumps(
            {"llmOps": {"batchPolicy": {"forceBatchWhenQueueOver": 0,
                                        "retryPolicy": {"maxRetries": 1, "initialDelaySeconds": 0}}}}
        )
    )
    assert cli(sample_repo, "enqueue", "--phase", "bulk-ticket-validation").code == 0
    layout = Layout(sample_repo)
    cid = _payload_ids(layout)["cheap"][0]
    # Its real line never comes; a line of the wrong shape for it does, every time.
    sandbox.set_scenario(
        {"result_lines": {"drop": [cid], "append": [json.dumps({"custom_id": cid, "result": {"type": "??"}})]}}
    )
    assert cli(sample_repo, "submit").code == 0
    time.sleep(0.3)
    _until_terminal(cli, sample_repo)
    jobs, _ = read_queue(layout)
    job = next(j for j in jobs if j.model_alias == "cheap")
    assert job.status == "completed" and job.settled.get("failed") == 1
    assert job.error is not None and cid in job.error and MALFORMED in job.error


def test_result_from_line_never_raises() -> None:
    for line in ["", "null", "{}", '{"custom_id": 5}', '{"custom_id": "x", "result": null}', "[" * 10000]:
        res = result_from_line(line, 1)
        assert res.outcome == "errored" and res.error_type == MALFORMED
    assert result_from_line('{"custom_id": "x", "result": {"type": "expired"}}', 1).outcome == "expired"
    ok = result_from_line(succeeded_line("x", "hello"), 1)
    assert ok.outcome == "succeeded" and ok.text == "hello"
