"""The ledger: SQLite history of events, decisions, executions (the outbox) and processed sources."""

from ai_employee.ledger.runs import RunRecord, StepRecord
from ai_employee.ledger.store import Ledger
from ai_employee.ledger.usage import Usage

__all__ = ["Ledger", "RunRecord", "StepRecord", "Usage"]
