"""Planners turn an action into a plan draft: Claude when configured, else the template planner (the
composition root, `composition.make_planner`, chooses)."""

from ai_employee.planner.base import PlanDraft, Planner, PlanningContext, Revision
from ai_employee.planner.template import TemplatePlanner

__all__ = ["PlanDraft", "Planner", "PlanningContext", "Revision", "TemplatePlanner"]
