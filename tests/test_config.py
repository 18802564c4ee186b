from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch_ops.cli import main
from batch_ops.config import DEFAULT_MODELS, load_config, parse_config
from batch_ops.errors import ConfigError
from tests.conftest import SAMPLE


def test_the_toolkits_full_file_loads_and_keeps_other_sections() -> None:
    config = load_config(SAMPLE)
    raw = json.loads((SAMPLE / "backlog.config.json").read_text())
    assert config.policy.force_batch_when_queue_over == raw["llmOps"]["batchPolicy"]["forceBatchWhenQueueOver"]
    dumped = config.model_dump(by_alias=True)
    for key in raw:
        assert key in dumped, f"top-level section {key} was dropped"
    assert config.ticket_validation.min_acceptance_criteria == 2


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    assert config.policy.max_concurrent_batch_jobs == 10
    assert config.price("cheap") == DEFAULT_MODELS["cheap"]


def test_user_can_override_a_price() -> None:
    config = parse_config(
        {
            "llmOps": {
                "models": {
                    "cheap": {"model": "m", "inputUsdPerMTok": 2, "outputUsdPerMTok": 9, "minCacheableTokens": 0}
                }
            }
        }
    )
    assert config.price("cheap").input_usd_per_mtok == 2
    assert config.price("frontier").model == "claude-opus-4-6"


def test_one_problem_per_key_path() -> None:
    bad = {
        "llmOps": {
            "batchPolicy": {
                "enabled": "sometimes",
                "eligiblePhases": ["refinement", "implementation", "nope"],
                "maxConcurrentBatchJobs": 0,
                "retryPolicy": {"maxRetries": -1},
            }
        },
        "ticketValidation": {"minAcceptanceCriteria": "two"},
    }
    with pytest.raises(ConfigError) as info:
        parse_config(bad)
    problems = info.value.problems
    joined = "\n".join(problems)
    assert "llmOps.batchPolicy.enabled" in joined
    assert "llmOps.batchPolicy.eligiblePhases" in joined and "interactive" in joined
    assert "llmOps.batchPolicy.maxConcurrentBatchJobs" in joined
    assert "llmOps.batchPolicy.retryPolicy.maxRetries" in joined
    assert "ticketValidation.minAcceptanceCriteria" in joined
    assert len(problems) >= 5


def test_validate_command_prints_each_problem_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "backlog.config.json").write_text(
        json.dumps({"llmOps": {"batchPolicy": {"maxConcurrentBatchJobs": 0, "forceBatchWhenQueueOver": -3}}})
    )
    assert main(["config", "validate", "--repo", str(tmp_path)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2
    assert all("llmOps.batchPolicy." in line for line in out)


def test_broken_json_names_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "backlog.config.json").write_text('{"llmOps": {,}}')
    assert main(["config", "validate", "--repo", str(tmp_path)]) == 1
    assert "line 1 column" in capsys.readouterr().out


def test_other_commands_stop_on_invalid_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "backlog.config.json").write_text(json.dumps({"llmOps": {"batchPolicy": {"enabled": 3.5}}}))
    assert main(["triage", "--repo", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "llmOps.batchPolicy.enabled" in err and "Traceback" not in err


def test_schema_command_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "llmOps" in schema["properties"]
