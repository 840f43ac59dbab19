"""The ledger: SQLite history of events, decisions, executions (the outbox) and processed sources."""

from ai_employee.ledger.store import Ledger, RunRecord, StepRecord

__all__ = ["Ledger", "RunRecord", "StepRecord"]
