"""Credits as exact integers.

The ledger never stores binary floats: every amount is an integer number of
*micro-credits* (1 credit = 1,000,000 micro-credits). Floats and decimal strings exist
only at the edges (config, headers, ``usage.cost``, the CLI).
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation
from fractions import Fraction

#: Micro-credits in one credit.
MICRO = 1_000_000

_ROUNDING = {"floor": ROUND_FLOOR, "ceil": ROUND_CEILING, "even": ROUND_HALF_EVEN}


def to_micro(value: Decimal | str | int | float, rounding: str = "even") -> int:
    """Credits (a number or a decimal string) as integer micro-credits.

    Floats go through ``str`` so ``0.1`` means exactly 0.1 credits. ``rounding`` is
    ``"even"``, ``"floor"`` (caps: never allow more than asked) or ``"ceil"``.
    Raises ``ValueError`` for text that is not a finite number.
    """
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number of credits") from None
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not a finite number of credits")
    return int((amount * MICRO).quantize(Decimal(1), rounding=_ROUNDING[rounding]))


def ceil_micro(value: Fraction) -> int:
    """An exact (fractional) amount of micro-credits, rounded up: a price is never
    rounded in the payer's disfavour by more than one micro-credit, nor lost."""
    return math.ceil(value)


def to_decimal(micro: int) -> Decimal:
    """Micro-credits as an exact ``Decimal`` number of credits."""
    return Decimal(micro).scaleb(-6)


def format_credits(micro: int) -> str:
    """Micro-credits as a plain decimal string of credits: ``1500000`` -> ``"1.5"``."""
    text = f"{to_decimal(micro):f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def to_float(micro: int) -> float:
    """Micro-credits as a float of credits (for ``usage.cost`` only, never stored)."""
    return micro / MICRO


__all__ = ["MICRO", "ceil_micro", "format_credits", "to_decimal", "to_float", "to_micro"]
