"""The batch-eligible phases, by name. A new phase is a module here plus one line below."""

from __future__ import annotations

from batch_ops.phases.base import Phase
from batch_ops.phases.cost_report import CostReportPhase
from batch_ops.phases.duplicates import DuplicatesPhase
from batch_ops.phases.refinement import RefinementPhase
from batch_ops.phases.validation import ValidationPhase


def all_phases() -> dict[str, Phase]:
    phases: list[Phase] = [ValidationPhase(), RefinementPhase(), DuplicatesPhase(), CostReportPhase()]
    return {p.name: p for p in phases}
