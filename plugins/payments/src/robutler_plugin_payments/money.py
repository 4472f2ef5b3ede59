"""Credits as exact integers.

The ledger never stores binary floats: every amount is an integer number of
*micro-credits* (1 credit = 1,000,000 micro-credits). Floats and decimal strings exist
only at the edges (config, headers, ``usage.cost``, the CLI).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation

#: Micro-credits in one credit.
MICRO = 1_000_000
#: Fine units in one micro-credit. Prices and a request's running cost are integers of
#: 10^-15 credits (a token of a model priced 0.000001 credits per 1K tokens is 10^6 fine
#: units), so bills add up exactly with plain integers; the total is rounded up to a
#: micro-credit once, for the ledger.
FINE = 1_000_000_000

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


def fine_to_micro(fine: int) -> int:
    """Fine units rounded up to whole micro-credits: the payer is never charged more than
    one micro-credit over the exact amount, and nothing is lost to rounding."""
    return -(-fine // FINE)


def fine_from_credits(value: Decimal) -> int:
    """Credits as fine units, rounded up (exact for up to 15 decimals)."""
    return int((value * MICRO * FINE).to_integral_value(rounding=ROUND_CEILING))


def to_decimal(micro: int) -> Decimal:
    """Micro-credits as an exact ``Decimal`` number of credits."""
    return Decimal(micro).scaleb(-6)


def format_credits(micro: int) -> str:
    """Micro-credits as a plain decimal string of credits: ``1500000`` -> ``"1.5"``."""
    sign = "-" if micro < 0 else ""
    whole, part = divmod(abs(micro), MICRO)
    if not part:
        return f"{sign}{whole}"
    return f"{sign}{whole}." + f"{part:06d}".rstrip("0")


def to_float(micro: int) -> float:
    """Micro-credits as a float of credits (for ``usage.cost`` only, never stored)."""
    return micro / MICRO


__all__ = ["FINE", "MICRO", "fine_from_credits", "fine_to_micro", "format_credits", "to_decimal", "to_float", "to_micro"]
