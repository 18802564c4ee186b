"""``backlog.config.json``: the schema of the parts batch-ops reads, and its loading.

The file belongs to the backlog toolkit; batch-ops types only what it uses and keeps every other
key as it is (``extra="allow"``), so a config written for the original toolkit loads unchanged.
Problems are collected, not raised one at a time: ``ConfigError.problems`` has one line per
key path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from batch_ops.errors import ConfigError

CONFIG_FILE = "backlog.config.json"

BATCH_PHASES: tuple[str, ...] = (
    "bulk-ticket-validation",
    "refinement",
    "duplicate-detection",
    "cost-report",
)
# Interactive by nature: a person waits on the answer, so they are never batched.
INTERACTIVE_WORKFLOWS: tuple[str, ...] = ("ticket-creation", "implementation")

Alias = Literal["cheap", "balanced", "frontier"]


class _Model(BaseModel):
    # Prices, ratios and delays must be real numbers: Infinity/NaN (which json.loads accepts) are refused.
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True, allow_inf_nan=False)


class ModelPrice(_Model):
    """One model alias: the model id and its standard (interactive) prices in USD per million tokens."""

    model: str = Field(min_length=1)
    input_usd_per_mtok: float = Field(alias="inputUsdPerMTok", ge=0)
    output_usd_per_mtok: float = Field(alias="outputUsdPerMTok", ge=0)
    min_cacheable_tokens: int = Field(alias="minCacheableTokens", ge=0)
    # Multipliers on the base input price; published in late 2025, kept configurable.
    batch_discount: float = Field(default=0.5, alias="batchDiscount", gt=0, le=1)
    cache_write_5m_multiplier: float = Field(default=1.25, alias="cacheWrite5mMultiplier", ge=0)
    cache_write_1h_multiplier: float = Field(default=2.0, alias="cacheWrite1hMultiplier", ge=0)
    cache_read_multiplier: float = Field(default=0.1, alias="cacheReadMultiplier", ge=0)


DEFAULT_MODELS: dict[str, ModelPrice] = {
    "cheap": ModelPrice(
        model="claude-haiku-4-5", inputUsdPerMTok=1.0, outputUsdPerMTok=5.0, minCacheableTokens=4096
    ),
    "balanced": ModelPrice(
        model="claude-sonnet-4-6", inputUsdPerMTok=3.0, outputUsdPerMTok=15.0, minCacheableTokens=1024
    ),
    "frontier": ModelPrice(
        model="claude-opus-4-6", inputUsdPerMTok=5.0, outputUsdPerMTok=25.0, minCacheableTokens=4096
    ),
}


class RetryPolicy(_Model):
    max_retries: int = Field(default=3, alias="maxRetries", ge=0, le=20)
    backoff_multiplier: float = Field(default=2.0, alias="backoffMultiplier", ge=1.0, le=10.0)
    # Seconds; bounds how long one scheduled run may wait in total on retries.
    initial_delay_seconds: float = Field(default=1.0, alias="initialDelaySeconds", ge=0)
    max_delay_seconds: float = Field(default=60.0, alias="maxDelaySeconds", ge=0)


class BatchPolicy(_Model):
    enabled: bool = True
    eligible_phases: list[str] = Field(default_factory=lambda: list(BATCH_PHASES), alias="eligiblePhases")
    force_batch_when_queue_over: int = Field(default=25, alias="forceBatchWhenQueueOver", ge=0)
    max_concurrent_batch_jobs: int = Field(default=10, alias="maxConcurrentBatchJobs", ge=1)
    retry_policy: RetryPolicy = Field(default_factory=RetryPolicy, alias="retryPolicy")

    @field_validator("eligible_phases")
    @classmethod
    def _known_phases(cls, phases: list[str]) -> list[str]:
        for phase in phases:
            if phase in INTERACTIVE_WORKFLOWS:
                raise ValueError(f"{phase!r} is interactive and is never batched")
            if phase not in BATCH_PHASES:
                raise ValueError(f"unknown phase {phase!r} (known: {', '.join(BATCH_PHASES)})")
        return phases


class Budget(_Model):
    monthly_usd: float = Field(alias="monthlyUsd", gt=0)
    warn_ratio: float = Field(default=0.7, alias="warnRatio", gt=0)
    hard_stop_ratio: float = Field(default=1.0, alias="hardStopRatio", gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Budget:
        if self.warn_ratio > self.hard_stop_ratio:
            raise ValueError("warnRatio must not exceed hardStopRatio")
        return self


class LlmOps(_Model):
    batch_policy: BatchPolicy = Field(default_factory=BatchPolicy, alias="batchPolicy")
    models: dict[str, ModelPrice] = Field(default_factory=dict)
    budget: Budget | None = None


class TicketValidation(_Model):
    require_test_strategy: bool = Field(default=True, alias="requireTestStrategy")
    require_affected_files: bool = Field(default=True, alias="requireAffectedFiles")
    min_acceptance_criteria: int = Field(default=2, alias="minAcceptanceCriteria", ge=0)
    require_verification_commands: bool = Field(default=True, alias="requireVerificationCommands")
    require_dependency_check: bool = Field(default=False, alias="requireDependencyCheck")


class BacklogSection(_Model):
    data_dir: str = Field(default="backlog/data", alias="dataDir", min_length=1)

    @field_validator("data_dir")
    @classmethod
    def _relative(cls, value: str) -> str:
        if "\x00" in value or value.startswith("/") or ".." in Path(value).parts:
            raise ValueError("must be a relative path inside the repository")
        first = Path(value).parts[0] if Path(value).parts else ""
        if first in (".git", ".backlog-ops"):
            raise ValueError(f"must not be inside {first}/")
        return value


class Config(_Model):
    llm_ops: LlmOps = Field(default_factory=LlmOps, alias="llmOps")
    ticket_validation: TicketValidation = Field(default_factory=TicketValidation, alias="ticketValidation")
    backlog: BacklogSection = Field(default_factory=BacklogSection)

    @property
    def policy(self) -> BatchPolicy:
        return self.llm_ops.batch_policy

    def price(self, alias: str) -> ModelPrice:
        """The model and prices for an alias: the user's entry if given, else the default."""
        found = self.llm_ops.models.get(alias) or DEFAULT_MODELS.get(alias)
        if found is None:
            raise ConfigError(CONFIG_FILE, [f"llmOps.models.{alias}: unknown model alias"])
        return found

    def alias_for_model(self, model: str) -> str | None:
        for alias in {**DEFAULT_MODELS, **self.llm_ops.models}:
            if self.price(alias).model == model:
                return alias
        return None


def _loc(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(top level)"


def parse_config(data: Any, source: str = CONFIG_FILE) -> Config:
    """Validate already-decoded JSON; raise ConfigError with one line per problem."""
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): must be a JSON object"])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            shown = "" if isinstance(got, dict | list) or got is None else f" (got {json.dumps(got)})"
            problems.append(f"{_loc(tuple(err['loc']))}: {msg}{shown}")
        raise ConfigError(source, problems) from None


def load_config(root: Path) -> Config:
    """Load ``backlog.config.json`` from the repository root; a missing file means all defaults."""
    path = root / CONFIG_FILE
    if not path.exists():
        return Config()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [f"(file): cannot read: {exc}"]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            str(path), [f"(file): not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"]
        ) from None
    except RecursionError:
        raise ConfigError(str(path), ["(file): JSON nested too deeply to read"]) from None
    return parse_config(data, str(path))


def config_json_schema() -> dict[str, Any]:
    return Config.model_json_schema(by_alias=True)
