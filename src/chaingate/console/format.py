"""How the console shows values: amounts with their decimals, UTC times with relative ages."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from markupsafe import Markup, escape


def amount(value: int | Decimal | str | None, decimals: int | None) -> Markup:
    """Base units as a decimal number with ALL of the asset's decimals (trailing zeros dimmed),
    so a right-aligned column of one asset lines up on the point. Integer arithmetic only."""
    if value is None:
        return Markup("&mdash;")
    units = int(value)
    if not decimals:
        return escape(f"{units:,}")
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**decimals)
    digits = f"{frac:0{decimals}d}"
    kept = digits.rstrip("0")
    zeros = digits[len(kept) :]
    text = f"{sign}{whole:,}.{kept}"
    if zeros:
        return Markup('{}<span class="z">{}</span>').format(text, zeros)
    return escape(text)


def utc(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def age(value: datetime | None, now: datetime | None = None) -> str:
    """'42s ago', '5m ago', '3h ago', '2d ago'."""
    if value is None:
        return ""
    seconds = int(((now or datetime.now(UTC)) - value).total_seconds())
    if seconds < 0:
        return "in the future"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def when(value: datetime | None) -> Markup:
    """A UTC time with its age beside it; the exact time is also the title."""
    if value is None:
        return Markup("&mdash;")
    return Markup('<time datetime="{}" title="{}">{}</time> <span class="age">{}</span>').format(
        value.isoformat(), utc(value), utc(value)[5:], age(value)
    )


def short(value: str | None, keep: int = 10) -> str:
    """A long hash as its start and end (the full value goes in a title or a link)."""
    if not value:
        return "—"
    return value if len(value) <= 2 * keep + 1 else f"{value[:keep]}…{value[-6:]}"


FILTERS = {"amount": amount, "utc": utc, "age": age, "when": when, "short": short}
