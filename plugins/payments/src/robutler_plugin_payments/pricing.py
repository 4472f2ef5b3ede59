"""Prices: per-request fee, tokens per model (with markup), tool calls.

All arithmetic is on integers of fine units (10^-15 credits, :data:`~.money.FINE` per
micro-credit), exact for prices with up to 15 decimals per token; a request's total is
rounded up to a whole micro-credit once, at the end (:func:`~.money.fine_to_micro`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from robutler_specs import ToolSpec, UsageRecord

from .config import ModelPrice, PaymentsConfig
from .money import FINE, MICRO, fine_from_credits, format_credits, to_micro


@dataclass(frozen=True)
class TokenPrice:
    """A model's effective price (markup included), in fine units per token."""

    prompt: int
    completion: int
    base: ModelPrice
    markup: Decimal
    pattern: str
    cache_read: int = 0
    cache_write: int = 0

    def cost(self, prompt_tokens: int, completion_tokens: int, cache_read: int = 0, cache_write: int = 0) -> int:
        """Fine units for that many tokens; ``cache_read`` and ``cache_write`` are the part of
        ``prompt_tokens`` the provider read from / wrote to its prompt cache."""
        uncached = max(prompt_tokens - cache_read - cache_write, 0)
        return (uncached * self.prompt + cache_read * self.cache_read + cache_write * self.cache_write
                + completion_tokens * self.completion)

    def record_cost(self, record: UsageRecord) -> int:
        """Fine units for an LLM usage record."""
        return self.cost(record.prompt_tokens, record.completion_tokens,
                         record.cache_read_tokens, record.cache_write_tokens)

    def describe(self) -> dict[str, Any]:
        """Credits per 1K tokens, base and with markup, as decimal strings."""
        return {
            "prompt_per_1k": _per_1k(self.prompt),
            "completion_per_1k": _per_1k(self.completion),
            "base_prompt_per_1k": f"{self.base.prompt.normalize():f}",
            "cache_read_per_1k": _per_1k(self.cache_read),
            "cache_write_per_1k": _per_1k(self.cache_write),
            "base_completion_per_1k": f"{self.base.completion.normalize():f}",
            "markup": f"{self.markup.normalize():f}",
        }


FREE = TokenPrice(0, 0, ModelPrice(), Decimal(0), "")


def _per_1k(per_token: int) -> str:
    value = Decimal(per_token) * 1000 / (MICRO * FINE)
    return f"{value.normalize():f}"


def _per_token(credits_per_1k: Decimal, markup: Decimal) -> int:
    return fine_from_credits(credits_per_1k * (1 + markup) / 1000)


class PriceTable:
    """What one agent charges, built from its :class:`PaymentsConfig`."""

    def __init__(self, config: PaymentsConfig) -> None:
        self.config = config
        self.request_fee = to_micro(config.request_fee, "ceil")
        self.request_fee_fine = self.request_fee * FINE
        self.min_balance = to_micro(config.min_balance, "ceil")
        self.default_reservation = to_micro(config.default_reservation, "floor")
        self._models: dict[str, TokenPrice] = {}
        for pattern, price in config.models.items():
            markup = config.markup if price.markup is None else price.markup
            prompt = _per_token(price.prompt, markup)
            self._models[pattern] = TokenPrice(
                prompt, _per_token(price.completion, markup), price, markup, pattern,
                prompt if price.cache_read is None else _per_token(price.cache_read, markup),
                prompt if price.cache_write is None else _per_token(price.cache_write, markup),
            )
        self._tools = {name: to_micro(credits, "ceil") for name, credits in config.tools.items()}

    @property
    def minimum(self) -> int:
        """The least a request needs reserved: ``max(min_balance, request_fee)``."""
        return max(self.min_balance, self.request_fee)

    def model(self, model: str) -> TokenPrice | None:
        """The price of ``provider/model``: an exact entry, else ``provider/*``, else ``*``."""
        found = self._models.get(model)
        if found is None:
            found = self._models.get(model.split("/", 1)[0] + "/*")
        if found is None:
            found = self._models.get("*")
        return found

    def tool(self, name: str, spec: ToolSpec | None) -> int:
        """Micro-credits per call of a tool: the config override, else its ``@pricing``
        (rounded up to a micro-credit)."""
        if name in self._tools:
            return self._tools[name]
        if spec is not None and spec.pricing is not None:
            return to_micro(spec.pricing.credits, "ceil")
        return 0

    def describe(self) -> dict[str, Any]:
        """The price table shown by ``GET /{agent}`` (decimal strings of credits)."""
        return {
            "currency": "credits",
            "request_fee": format_credits(self.request_fee),
            "min_balance": format_credits(self.min_balance),
            "default_reservation": format_credits(self.default_reservation),
            "markup": f"{self.config.markup.normalize():f}",
            "models": {pattern: price.describe() for pattern, price in self._models.items()},
            "tools": {name: {"credits": format_credits(m), "per": "call"} for name, m in self._tools.items()},
            "headers": {
                "request": ["X-Payment-Token", "X-Authorized-Amount"],
                "response": ["X-Robutler-Cost"],
            },
        }


__all__ = ["FREE", "PriceTable", "TokenPrice"]
