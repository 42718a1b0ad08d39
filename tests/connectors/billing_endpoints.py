"""Python endpoints for the connector's tests, served by `flowmetal connector` in a real
process: one per way a step can end (a right value, a wrong type, an exception) and
some that exercise the value conversions (keyword names, lists, records, maps, enums)."""

from __future__ import annotations

from flowmetal.connectors.sdk import Keyword, Member, RecordValue, current_step, endpoint


@endpoint("acme.billing/charge!")
def charge(amount, currency="EUR"):
    return amount * 2 if currency == "EUR" else amount * 3


@endpoint("acme.billing/bad!")
def bad(amount):
    return "not a number"


@endpoint("acme.billing/boom!")
def boom(amount):
    raise RuntimeError(f"card declined for {amount}")


@endpoint("acme.billing/receipt!")
def receipt(amount, card_number, step):
    assert current_step() == step
    return RecordValue("acme.billing", "receipt", ("id", "lines"), (step.key, [amount, len(card_number)]))


@endpoint("acme.billing/mixed!")
def mixed():
    return [1, "two"]


@endpoint("acme.billing/classify!")
def classify(order):
    total = order[Keyword("total")] * order[Keyword("count")]
    return Member("acme.billing", "tier", "+gold+") if total > 100 else None


@endpoint("acme.billing/huge!")
def huge(n):
    return "x" * n
