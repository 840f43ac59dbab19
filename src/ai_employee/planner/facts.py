"""Facts the template planner reads from an item's text with plain rules: is it an invoice (amount,
currency, due date, bank details, number), a meeting request (proposed times, who, how long), urgent,
or from an automated sender. Deterministic and conservative: a rule that is unsure finds nothing.

The text is untrusted: facts are only quoted back to the human, never acted on (an invoice becomes a
task to pay, never a payment).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from ai_employee.vault.extract.money import AMOUNT, CURRENCY, value

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        1,
    )
    for name in names
}
_MONTH = (
    r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_ISO_DATE = r"(\d{4})-(\d{2})-(\d{2})"
_DAY_MONTH = rf"(\d{{1,2}})(?:st|nd|rd|th)?\s+{_MONTH}\.?(?:,?\s+(\d{{4}}))?"
_MONTH_DAY = rf"{_MONTH}\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(\d{{4}}))?"
_TOTAL_LINE = re.compile(r"\b(total|amount due|balance due|to pay|grand total)\b", re.IGNORECASE)
_DUE = re.compile(r"\b(due(?: date)?|pay(?:able)? by|payment due)\b[:\s]*(?P<rest>.{0,40})", re.IGNORECASE)
_IBAN = re.compile(r"\b([A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){2,7}(?:\s?[A-Z0-9]{1,3})?)\b")
_ACCOUNT = re.compile(r"\b(sort code\s*[\d-]{6,8}|account(?: number| no\.?)?\s*:?\s*\d{6,12})\b", re.IGNORECASE)
_INVOICE_NO = re.compile(
    r"\b(?:invoice|inv|bill)\s*(?:no\.?|number|#|nr\.?)?\s*[:#]?\s*(?P<no>[A-Z]{0,5}-?\d[\w-]{2,})"
    r"|\bNo\.\s*(?P<no2>[A-Z]{2,5}-\d{2,})",
    re.IGNORECASE,
)
_INVOICE_WORDS = re.compile(r"\b(invoice|bill|amount due|payment due|rechnung|factura|facture)\b", re.IGNORECASE)
_MEETING_WORDS = re.compile(
    r"\b(meeting|meet|call|catch[- ]up|schedule|invite|appointment|zoom|teams|calendar)\b", re.IGNORECASE
)
_MEETING_ASK = re.compile(
    r"\b(schedule|set up|arrange|book|jump on a call|can we meet|could we meet|invite|hop on a call)\b", re.IGNORECASE
)
_WEEKDAY = r"(monday|tuesday|wednesday|thursday|friday|saturday|sunday|next week|tomorrow|this week|afternoon|morning)"
_TIME_PHRASE = re.compile(
    rf"[^.\n]*\b{_WEEKDAY}\b[^.\n]*|[^.\n]*\b\d{{1,2}}[:.]\d{{2}}\s*(?:am|pm)?\b[^.\n]*", re.IGNORECASE
)
_DURATION = re.compile(r"\b(\d{1,3})\s*(min(?:ute)?s?|hours?|h)\b", re.IGNORECASE)
_ATTENDEES = re.compile(r"\b(?:invite|attendees|with|participants)\s*:\s*(?P<who>[^\n.]{3,200})", re.IGNORECASE)
_URGENT = re.compile(
    r"\b(urgent(?:ly)?|asap|as soon as possible|immediately|right away|today|by tomorrow|end of (?:the )?day|eod)\b",
    re.IGNORECASE,
)
_DEADLINE = re.compile(
    rf"\b(?:deadline|due|by|before|no later than|decide by)\s+(?:the\s+)?(?:{_DAY_MONTH}|{_MONTH_DAY}|{_ISO_DATE})",
    re.IGNORECASE,
)
_AUTOMATED_SENDER = re.compile(
    r"^(no-?reply|do-?not-?reply|donotreply|mailer-daemon|postmaster|notifications?|newsletter|bounce[s]?)([+.-].*)?@",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Invoice:
    amount: str  # as written, e.g. "£546.00"
    currency: str | None
    due: date | None
    number: str | None
    bank: list[str] = field(default_factory=list)  # IBAN, account, sort code lines as written


@dataclass(frozen=True)
class Meeting:
    times: list[str]
    attendees: str | None
    duration: str | None


def automated_sender(address: str) -> bool:
    """A sender address nobody reads (no-reply, notifications, mailer-daemon)."""
    return bool(_AUTOMATED_SENDER.match(address.strip()))


def urgency(*texts: str) -> list[str]:
    """The urgency words and deadlines found, as written (`urgent`, `deadline Dec 12`), once each."""
    found: list[str] = []
    for text in texts:
        for match in (*_URGENT.finditer(text), *_DEADLINE.finditer(text)):
            phrase = " ".join(match.group(0).split())
            if phrase.lower() not in (f.lower() for f in found):
                found.append(phrase)
    return found[:5]


def invoice(text: str, today: date | None = None) -> Invoice | None:
    """An invoice's facts, if the text reads as one: an invoice word and an amount with a currency."""
    if not _INVOICE_WORDS.search(text):
        return None
    amount = _total(text)
    if amount is None:
        return None
    due = None
    for match in _DUE.finditer(text):
        due = parse_date(match.group("rest"), today)
        if due is not None:
            break
    number = next((m.group("no") or m.group("no2") for m in _INVOICE_NO.finditer(text)), None)
    bank = [" ".join(m.group(0).split()) for m in (*_IBAN.finditer(text), *_ACCOUNT.finditer(text))]
    symbol = amount[0] if amount[0] in "£$€" else amount.split()[-1]
    return Invoice(amount, CURRENCY.get(symbol.lower()), due, number, list(dict.fromkeys(bank))[:4])


def _total(text: str) -> str | None:
    """The amount on a total line (the last one), else the largest amount in the text."""
    on_total = [m for line in text.splitlines() if _TOTAL_LINE.search(line) for m in AMOUNT.finditer(line)]
    candidates = on_total or list(AMOUNT.finditer(text))
    if not candidates:
        return None
    if on_total:
        return " ".join(on_total[-1].group(0).split())
    return " ".join(max(candidates, key=lambda m: value(m.group(0))).group(0).split())


def meeting(text: str) -> Meeting | None:
    """A meeting request's facts, if the text asks for one."""
    if not (_MEETING_WORDS.search(text) and _MEETING_ASK.search(text)):
        return None
    times = [" ".join(m.group(0).split()) for m in _TIME_PHRASE.finditer(text)]
    attendees = _ATTENDEES.search(text)
    duration = _DURATION.search(text)
    return Meeting(
        times=list(dict.fromkeys(t for t in times if len(t) <= 200))[:5],
        attendees=" ".join(attendees.group("who").split()) if attendees else None,
        duration=" ".join(duration.group(0).split()) if duration else None,
    )


def parse_date(text: str, today: date | None = None) -> date | None:
    """The first date in `text`: ISO (2026-11-30), `12 December [2026]` or `Dec 12[, 2026]`; a date
    without a year is the next one on or after `today`."""
    today = today or date.today()
    match = re.search(_ISO_DATE, text)
    if match:
        try:
            return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            return None
    for pattern, day_group, month_group in ((_DAY_MONTH, 1, 2), (_MONTH_DAY, 2, 1)):
        match = re.search(pattern, text, re.IGNORECASE)
        if match:
            month = _MONTHS.get(match.group(month_group).lower().rstrip("."))
            year = int(match.group(3)) if match.group(3) else today.year
            try:
                found = date(year, month or 0, int(match.group(day_group)))
            except ValueError:
                return None
            if not match.group(3) and found < today:
                found = found.replace(year=year + 1)
            return found
    return None
