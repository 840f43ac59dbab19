"""The policy: deterministic rules that rate a plan's steps LOW, MEDIUM or HIGH (docs/policy.md)."""

from ai_employee.policy.rules import Assessment, Criticality, Facts, Match, Policy

__all__ = ["Assessment", "Criticality", "Facts", "Match", "Policy"]
