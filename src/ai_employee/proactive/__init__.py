"""Proactive work: schedules (and, to come, monitors and the Monday briefing), through the same plan →
policy → approval → execution pipeline as everything else."""
