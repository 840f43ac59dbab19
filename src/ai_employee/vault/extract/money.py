"""Amounts of money as people write them: `£546.00`, `1.234,56 EUR`, `USD 1,200`."""

from __future__ import annotations

import re

CURRENCY = {
    "£": "GBP", "$": "USD", "€": "EUR", "¥": "JPY", "gbp": "GBP", "usd": "USD", "eur": "EUR", "chf": "CHF",
    "jpy": "JPY", "cad": "CAD", "aud": "AUD", "pln": "PLN", "sek": "SEK", "nok": "NOK", "dkk": "DKK",
    "inr": "INR", "cny": "CNY", "dollars": "USD", "dollar": "USD", "euros": "EUR", "euro": "EUR",
    "pounds": "GBP", "pound": "GBP",
}  # fmt: skip
_NUMBER = r"\d+(?:[,.\s]\d{3})*(?:[.,]\d{1,2})?"
_CODES = r"GBP|USD|EUR|CHF|JPY|CAD|AUD|PLN|SEK|NOK|DKK|INR|CNY"
# Not inside a longer number on the left; a symbol or code before or after the number.
AMOUNT = re.compile(
    rf"(?<![\d.,])(?:(?P<sym>[£$€¥])\s?(?P<n1>{_NUMBER})"
    rf"|(?P<n2>{_NUMBER})\s?(?P<code>{_CODES}|dollars?|euros?|pounds?|[£$€¥])(?![A-Za-z])"
    rf"|(?P<code2>{_CODES})\s?(?P<n3>{_NUMBER}))",
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
