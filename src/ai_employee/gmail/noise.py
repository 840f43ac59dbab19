"""Noise rules (`gmail.noise` in config): mail that is skipped, or filed without a reply. The first rule
whose every condition matches wins; a rule with no condition matches nothing."""

from __future__ import annotations

import fnmatch
import re
from email.message import EmailMessage

from ai_employee.config_sections import NoiseRule


def matching_rule(
    rules: list[NoiseRule], sender: str, subject: str, msg: EmailMessage, labels: list[str]
) -> NoiseRule | None:
    address = sender.strip().lower()
    for rule in rules:
        checks = []
        if rule.sender:
            checks.append(any(fnmatch.fnmatchcase(address, glob.lower()) for glob in rule.sender))
        if rule.subject is not None:
            checks.append(re.search(rule.subject, subject, re.IGNORECASE) is not None)
        if rule.header is not None:
            checks.append(rule.header in msg)
        if rule.label is not None:
            checks.append(rule.label in labels)
        if checks and all(checks):
            return rule
    return None
