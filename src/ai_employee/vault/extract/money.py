"""Amounts of money as people write them: `£546.00`, `1.234,56 EUR`, `USD 1,200`."""

from __future__ import annotations

import re

CURRENCY = {"£": "GBP", "$": "USD", "€": "EUR", "gbp": "GBP", "usd": "USD", "eur": "EUR", "chf": "CHF"}
AMOUNT = re.compile(
    r"(?P<sym>[£$€])\s?(?P<n1>\d{1,3}(?:[,.\s]\d{3})*(?:[.,]\d{2})?)"
    r"|(?P<n2>\d{1,3}(?:[,.\s]\d{3})*(?:[.,]\d{2})?)\s?(?P<code>GBP|USD|EUR|CHF|€)\b"
    r"|(?P<code2>GBP|USD|EUR|CHF)\s?(?P<n3>\d{1,3}(?:[,.\s]\d{3})*(?:[.,]\d{2})?)",
    re.IGNORECASE,
)


def amounts(text: str) -> list[tuple[float, str]]:
    """Every amount with a currency in the text: (value, as written)."""
    return [(value(m.group(0)), " ".join(m.group(0).split())) for m in AMOUNT.finditer(text)]


def value(amount: str) -> float:
    """The number an amount stands for (`1.234,56 €` -> 1234.56); 0.0 if none."""
    digits = re.sub(r"[^\d.,]", "", amount)
    if re.search(r",\d{2}$", digits):  # 1.234,56
        digits = digits.replace(".", "").replace(",", ".")
    try:
        return float(digits.replace(",", ""))
    except ValueError:
        return 0.0
