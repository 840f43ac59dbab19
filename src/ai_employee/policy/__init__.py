"""The policy: deterministic rules that rate a plan's steps LOW, MEDIUM or HIGH."""

from ai_employee.policy.rules import Assessment, Criticality, Policy

__all__ = ["Assessment", "Criticality", "Policy"]
