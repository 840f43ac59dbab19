"""Planners turn an action into a plan draft: Claude when configured, else the template planner."""

from ai_employee.planner.base import PlanDraft, Planner, PlanningContext
from ai_employee.planner.template import TemplatePlanner

__all__ = ["PlanDraft", "Planner", "PlanningContext", "TemplatePlanner", "make_planner"]


def make_planner() -> Planner:
    """The planner to use. Only the template planner exists so far; the Claude planner plugs in here."""
    return TemplatePlanner()
