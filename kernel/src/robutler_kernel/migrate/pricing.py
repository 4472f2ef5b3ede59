"""V1 ``pricing`` to the ``payments`` skill's settings (``docs/plugins/payments.md``).

V1 priced an agent per token and per call; V2's payments skill charges credits: a fee per
request, prices per 1K tokens (prompt and completion) per model, and prices per tool call.
One V1 unit is one credit.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

#: V1 pricing key -> (payments setting, factor): ``models["*"].<prompt/completion>`` for
#: token prices (``factor``: V1 unit per token -> per 1K tokens).
TOKEN_PRICES: dict[str, tuple[tuple[str, ...], int]] = {
    "per_token": (("prompt", "completion"), 1000),
    "per_1k_tokens": (("prompt", "completion"), 1),
    "per_thousand_tokens": (("prompt", "completion"), 1),
    "prompt_per_token": (("prompt",), 1000),
    "input_per_token": (("prompt",), 1000),
    "completion_per_token": (("completion",), 1000),
    "output_per_token": (("completion",), 1000),
    "prompt_per_1k_tokens": (("prompt",), 1),
    "completion_per_1k_tokens": (("completion",), 1),
}

#: V1 pricing key -> payments setting, as is.
AMOUNTS: dict[str, str] = {
    "per_call": "request_fee",
    "per_request": "request_fee",
    "per_message": "request_fee",
    "min_balance": "min_balance",
    "minimum_balance": "min_balance",
    "markup": "markup",
}

#: V1 pricing keys with no V2 equivalent, and why.
UNSUPPORTED: dict[str, str] = {
    "per_minute": "payments charges per request, per token and per tool call; there is no time-based price",
    "per_second": "payments charges per request, per token and per tool call; there is no time-based price",
    "subscription": "payments has no subscriptions; callers pay per request from an account or a payment token",
    "free_tier": "payments has no free allowance; top accounts up instead (robutler-kernel payments topup)",
}


def amount(value: Any) -> Decimal | None:
    """A non-negative amount from a number or a numeric string; ``None`` if it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() and number >= 0 else None


def plain(number: Decimal) -> int | float:
    """``number`` as YAML writes it best: an int when whole, else the shortest float."""
    normal = number.normalize()
    if normal == normal.to_integral_value():
        return int(normal)
    return float(normal)


def reservation(fee: Decimal, min_balance: Decimal, completion_per_1k: Decimal) -> Decimal:
    """What a request without ``X-Authorized-Amount`` reserves: the fee, the minimum
    balance, and room for about 4K completion tokens (at least one credit)."""
    room = max(Decimal(1), completion_per_1k * 4)
    return max(fee, min_balance) + room


__all__ = ["AMOUNTS", "TOKEN_PRICES", "UNSUPPORTED", "amount", "plain", "reservation"]
