"""The ``payments`` skill: reserve before the model runs, check prices as it goes, settle at the end.

Per request:

1. ``on_connection``: find who pays (``X-Payment-Token``, else the authenticated
   identity's account), reserve ``min(X-Authorized-Amount or default_reservation,
   available)`` if that covers the minimum, else 402.
2. ``before_llm_call``: refuse (402) a call the rest of the reservation cannot start
   paying for, and lower ``max_tokens`` to what it can pay for.
3. ``before_toolcall`` / ``before_handoff``: refuse a priced tool whose price would go
   over the reservation (the model sees the reason); ``after_*`` records the outcome.
4. ``finalize_connection``: bill, settle (idempotent by request id), report the cost.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from robutler_specs import (
    AgentSpec,
    BadRequest,
    ChatCompletionChunk,
    ConfigError,
    LLMCall,
    LLMResult,
    PaymentRequired,
    RequestContext,
    ServiceUnavailable,
    Skill,
    ToolInvocation,
    ToolResult,
    hookimpl,
)

from .config import PaymentsConfig
from .ledger import (
    AccountNotFound,
    AccountRef,
    InsufficientCredits,
    Ledger,
    Settlement,
    UnknownReservation,
    hash_token,
)
from .meter import DONE, FAILED, Bill, Meter, PendingCall, ToolCharge, bill, estimate_prompt_tokens
from .money import FINE, fine_to_micro, format_credits, to_float, to_micro
from .pricing import FREE, PriceTable
from .shared import acquire_ledger, release_ledger

log = logging.getLogger("robutler.payments")

TOKEN_HEADER = "x-payment-token"
AMOUNT_HEADER = "x-authorized-amount"
COST_HEADER = "X-Robutler-Cost"
STATE_KEY = "payments"
#: Set while the ledger reserves for the request (cleared once it has answered).
RESERVING_KEY = "payments.reserving"
#: Attempts and pauses when the ledger fails while settling, before the settlement is
#: handed to a background retry.
SETTLE_PAUSES = (0.05, 0.25)


def _call_key(inv: ToolInvocation) -> str:
    # Some providers number tool calls per turn (call_0 in every round): the round keeps
    # one round's charge from overwriting another's.
    return f"{inv.round}:{inv.id}"


class PaymentsSkill(Skill):
    """Credits, prices and reserve-then-settle payments for an agent."""

    name = "payments"
    requires = ("auth",)
    Config = PaymentsConfig
    # After auth (5): the identity is known when the reservation is made.
    priority = 10
    description = "Credits: prices per token, tool and request; reserve, settle, 402 when short"

    def __init__(self, config: PaymentsConfig, agent: AgentSpec) -> None:
        super().__init__(config, agent)
        self.config: PaymentsConfig = config
        self.prices = PriceTable(config)
        if config.require_known_models:
            for model in [*agent.models, *agent.allowed_models]:
                if self.prices.model(model) is None:
                    provider = model.split("/", 1)[0]
                    raise ConfigError(
                        f"agents.{agent.name}.skills.payments: no price for model {model!r}; add it under "
                        f"models (as {model!r}, {provider + '/*'!r} or '*'), or set require_known_models: false"
                    )
        self.ledger: Ledger | None = None
        self._retries: set[asyncio.Task[Any]] = set()
        self._warned_per: set[str] = set()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open (or share) the ledger and release reservations left by a crashed process."""
        state = self.kernel.state
        self.ledger = acquire_ledger(self.config.ledger_settings(), state)
        try:
            await self.ledger.open()
        except ServiceUnavailable as exc:
            # The agent still starts: health checks fail and requests get 503 until the
            # ledger is back (it reconnects on the next request).
            log.error("agent %r: %s", self.agent.name, exc.message)

    async def stop(self) -> None:
        """Wait (briefly) for background settlements, then let go of the ledger."""
        if self._retries:
            _, pending = await asyncio.wait(set(self._retries), timeout=5)
            for task in pending:
                task.cancel()
            if pending:
                log.error(
                    "agent %r stopped with %d settlement(s) not written (ledger unavailable); their "
                    "reservations expire after reservation_ttl", self.agent.name, len(pending),
                )
        if self.ledger is not None:
            state = self.kernel.state
            await release_ledger(self.config.ledger_settings(), state, self.ledger)
            self.ledger = None

    def health_checks(self) -> Mapping[str, Callable[[], Awaitable[Any]]]:
        """``payments.ledger``: the ledger answers."""
        ledger = self.ledger
        if ledger is None:
            return {}
        return {f"payments.ledger ({ledger.describe()})": ledger.ping}

    def describe(self) -> dict[str, Any]:
        """The price table for ``GET /{agent}``."""
        info = self.prices.describe()
        info["reservation_ttl_seconds"] = self.config.reservation_ttl
        return info

    def _ledger(self) -> Ledger:
        if self.ledger is None:
            raise ServiceUnavailable(
                f"the payments skill of agent {self.agent.name!r} is not started", plugin=self.name
            )
        return self.ledger

    # -- request -------------------------------------------------------------------------

    def _payer(self, ctx: RequestContext) -> AccountRef:
        token = ctx.headers.get(TOKEN_HEADER)
        if token:
            return AccountRef(token_hash=hash_token(token.strip()))
        if ctx.identity.user_id:
            return AccountRef(account_id=ctx.identity.user_id)
        raise PaymentRequired(
            f"agent {self.agent.name!r} charges for requests: authenticate (an API key) so your "
            f"account pays, or send a prepaid payment token in X-Payment-Token",
            code="payment_required",
            plugin=self.name,
        )

    def _wanted(self, ctx: RequestContext) -> int:
        minimum = self.prices.minimum
        raw = ctx.headers.get(AMOUNT_HEADER)
        if raw is None:
            return self.prices.default_reservation
        try:
            cap = to_micro(raw, "floor")
        except ValueError:
            cap = -1
        if cap < 0:
            raise BadRequest(
                f"X-Authorized-Amount must be a non-negative number of credits (like 2.5), not {raw!r}",
                param="X-Authorized-Amount",
                code="invalid_authorized_amount",
                plugin=self.name,
            )
        if cap < minimum:
            raise PaymentRequired(
                f"X-Authorized-Amount authorizes {format_credits(cap)} credits, but agent "
                f"{self.agent.name!r} needs at least {format_credits(minimum)} credits reserved per "
                f"request (request fee {format_credits(self.prices.request_fee)}, minimum balance "
                f"{format_credits(self.prices.min_balance)}); send a larger X-Authorized-Amount",
                code="authorized_amount_too_low",
                plugin=self.name,
            )
        return cap

    def _short(self, ref: AccountRef, exc: InsufficientCredits) -> PaymentRequired:
        who = "the payment token" if ref.token_hash else f"account {exc.account_id!r}"
        held = ""
        if exc.reserved:
            until = ""
            if exc.held_until is not None:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exc.held_until))
                until = f" until {stamp} at the latest, sooner as they finish"
            count = f"{exc.holds} request(s)" if exc.holds else "requests"
            held = f" ({format_credits(exc.reserved)} more held by {count} in progress{until})"
        hint = self.config.topup_hint.format(account=exc.account_id)
        return PaymentRequired(
            f"insufficient credits: {who} has {format_credits(exc.available)} credits available{held}, "
            f"and agent {self.agent.name!r} needs {format_credits(exc.needed)} to start a request; {hint}",
            code="insufficient_credits",
            plugin=self.name,
        )

    def _missing(self, ref: AccountRef) -> PaymentRequired:
        if ref.token_hash:
            return PaymentRequired(
                "the X-Payment-Token is not valid (no such token); check it, or ask for a new one "
                "(robutler-kernel payments token create --balance <credits>)",
                code="invalid_payment_token",
                plugin=self.name,
            )
        return PaymentRequired(
            f"there is no credit account for user {ref.account_id!r}; ask the operator to create one "
            f"(robutler-kernel payments account create {ref.account_id} --balance <credits>), or send "
            f"a payment token in X-Payment-Token",
            code="no_credit_account",
            plugin=self.name,
        )

    @hookimpl
    async def on_connection(self, ctx: RequestContext) -> None:
        """Reserve credits for the request, or refuse it with 402."""
        ref = self._payer(ctx)
        wanted = self._wanted(ctx)
        ledger = self._ledger()
        # Marked until the ledger has answered: a request cut off meanwhile (the client left,
        # the deadline) must not leave a reservation nobody settles, so finalize_connection
        # releases whatever was reserved. The ledger runs an operation whose caller left to
        # its end, in order, so that release runs after it.
        ctx.state[RESERVING_KEY] = True
        try:
            reservation = await ledger.reserve(
                ref, ctx.request_id, wanted, self.prices.minimum, self.config.reservation_ttl, agent=self.agent.name
            )
        except Exception as exc:  # the ledger answered (a refusal, an outage): nothing in flight
            del ctx.state[RESERVING_KEY]
            if isinstance(exc, InsufficientCredits):
                raise self._short(ref, exc) from None
            if isinstance(exc, AccountNotFound):
                raise self._missing(ref) from None
            raise
        del ctx.state[RESERVING_KEY]
        meter = ctx.state[STATE_KEY] = Meter(
            account_id=reservation.account_id,
            source="token" if ref.token_hash else "account",
            reserved=reservation.amount,
            request_id=ctx.request_id,
            prices=self.prices,
        )
        # What the rest of the chain (handoffs, calls to other agents) may still spend.
        # Bound to the usage list, not to ctx: a closure over ctx stored in ctx would be
        # a reference cycle, every request garbage for the cycle collector.
        ctx.budget = functools.partial(meter.remaining_credits, ctx.usage)

    @staticmethod
    def _meter(ctx: RequestContext) -> Meter | None:
        meter = ctx.state.get(STATE_KEY)
        return meter if isinstance(meter, Meter) else None

    @hookimpl
    def before_llm_call(self, ctx: RequestContext, call: LLMCall) -> None:
        """Refuse a call the reservation cannot pay for; cap ``max_tokens`` to what it can."""
        meter = self._meter(ctx)
        if meter is None:
            return
        price = self.prices.model(call.model) or FREE
        prompt_tokens = estimate_prompt_tokens(call.messages)
        meter.pending = PendingCall(call.model, prompt_tokens, sum(1 for r in ctx.usage if r.kind == "llm"))
        if price is FREE or (not price.prompt and not price.completion):
            return
        remaining = meter.remaining(ctx.usage)
        after_prompt = remaining - price.cost(prompt_tokens, 0)
        affordable = after_prompt // price.completion if price.completion else None
        if after_prompt < 0 or (affordable is not None and affordable < 1):
            needed = fine_to_micro(price.cost(prompt_tokens, 1))
            raise PaymentRequired(
                f"the {format_credits(meter.reserved)} credits reserved for this request cannot pay for the "
                f"next call to {call.model}: {format_credits(max(remaining // FINE, 0))} left, about "
                f"{format_credits(needed)} needed; send a larger X-Authorized-Amount",
                code="reservation_exhausted",
                plugin=self.name,
            )
        if self.config.cap_max_tokens and affordable is not None:
            key = "max_completion_tokens" if "max_completion_tokens" in call.params else "max_tokens"
            current = call.params.get(key)
            if current is None or current > affordable:
                call.params[key] = affordable

    @hookimpl
    def on_chunk(self, ctx: RequestContext, chunk: ChatCompletionChunk) -> None:
        """Count the text delivered, to bill a stream cut off before its usage arrived."""
        meter = self._meter(ctx)
        if meter is None or meter.pending is None:
            return
        for choice in chunk.choices:
            if choice.delta.content:
                meter.pending.delivered_chars += len(choice.delta.content)

    @hookimpl
    def after_llm_call(self, ctx: RequestContext, call: LLMCall, result: LLMResult) -> None:
        """The call completed: the kernel's usage record bills it."""
        meter = self._meter(ctx)
        if meter is not None:
            meter.pending = None

    def _admit(self, ctx: RequestContext, inv: ToolInvocation) -> ToolResult | None:
        meter = self._meter(ctx)
        if meter is None:
            return None
        price = self.prices.tool(inv.name, inv.tool)
        if not price:
            return None
        pricing = inv.tool.pricing if inv.tool is not None else None
        if pricing is not None and pricing.per != "call" and inv.name not in self._warned_per:
            self._warned_per.add(inv.name)
            log.warning("tool %r is priced per %r; the payments skill charges it per call", inv.name, pricing.per)
        remaining = meter.remaining(ctx.usage)
        if price * FINE > remaining:
            return ToolResult(
                content=(
                    f"refused: tool {inv.name!r} costs {format_credits(price)} credits, but only "
                    f"{format_credits(max(remaining // FINE, 0))} of the {format_credits(meter.reserved)} credits "
                    f"reserved for this request remain. Answer without it, or tell the user that a larger "
                    f"X-Authorized-Amount is needed."
                ),
                is_error=True,
                plugin=self.name,
            )
        # Committed before the tool runs, so concurrent calls of one turn cannot overspend.
        meter.tools[_call_key(inv)] = ToolCharge(inv.name, price)
        return None

    def _record(self, ctx: RequestContext, inv: ToolInvocation, result: ToolResult) -> None:
        meter = self._meter(ctx)
        charge = meter.tools.get(_call_key(inv)) if meter is not None else None
        if charge is not None:
            charge.state = FAILED if result.is_error else DONE

    @hookimpl
    def before_toolcall(self, ctx: RequestContext, call: ToolInvocation) -> ToolResult | None:
        """Refuse a priced tool whose price is over what the reservation has left."""
        return self._admit(ctx, call)

    @hookimpl
    def after_toolcall(self, ctx: RequestContext, call: ToolInvocation, result: ToolResult) -> None:
        """Record whether the tool call completed (it is charged) or failed (it is not)."""
        self._record(ctx, call, result)

    @hookimpl
    def before_handoff(self, ctx: RequestContext, handoff: ToolInvocation) -> ToolResult | None:
        """Priced handoffs are checked like tools."""
        return self._admit(ctx, handoff)

    @hookimpl
    def after_handoff(self, ctx: RequestContext, handoff: ToolInvocation, result: ToolResult) -> None:
        """Record the handoff's outcome like a tool's."""
        self._record(ctx, handoff, result)

    # -- settlement ----------------------------------------------------------------------

    @hookimpl
    async def finalize_connection(self, ctx: RequestContext, error: BaseException | None) -> None:
        """Settle the real cost (idempotent by request id) and report it."""
        if ctx.state.pop(RESERVING_KEY, False):
            await self._release_cut_off(ctx.request_id)
            return
        meter = self._meter(ctx)
        if meter is None or meter.settled:
            return
        the_bill = bill(
            meter, self.prices, ctx.usage, agent=self.agent.name,
            charge_failed_tools=self.config.charge_failed_tools, error=error,
        )
        release = error is not None and not the_bill.metered
        try:
            settlement = await self._settle(meter, the_bill, release=release)
        except asyncio.CancelledError:
            # Only a stopping server cancels finalize_connection. The ledger still runs the
            # settlement asked for; should it not be written, the retry writes it (settling
            # is idempotent).
            self._retry_later(meter, the_bill, release)
            raise
        if settlement is None:
            return
        meter.settled = True
        ctx.cost = to_float(settlement.charged)
        ctx.response_headers[COST_HEADER] = format_credits(settlement.charged)

    async def _release_cut_off(self, request_id: str) -> None:
        """Release what a request cut off while the ledger reserved for it got (perhaps
        nothing: the ledger may have withdrawn the reservation, or refused it)."""
        try:
            await self._ledger().release(request_id)
        except UnknownReservation:
            pass
        except ServiceUnavailable as exc:
            log.warning(
                "request %s was cut off while reserving and the ledger is unavailable (%s); what it "
                "reserved is released when its owner sweep or reservation_ttl comes", request_id, exc.message,
            )

    async def _settle(self, meter: Meter, the_bill: Bill, *, release: bool) -> Settlement | None:
        ledger = self._ledger()
        for attempt, pause in enumerate((*SETTLE_PAUSES, None)):
            try:
                if release:
                    settlement = await ledger.release(meter.request_id)
                else:
                    settlement = await ledger.settle(meter.request_id, the_bill.total, the_bill.detail_json())
            except ServiceUnavailable as exc:
                if pause is None:
                    log.error(
                        "could not settle request %s (account %r, %s credits) after %d attempts: %s; "
                        "retrying in the background", meter.request_id, meter.account_id,
                        format_credits(the_bill.total), attempt + 1, exc.message,
                    )
                    self._retry_later(meter, the_bill, release)
                    return None
                await asyncio.sleep(pause)
                continue
            if settlement.capped:
                log.warning(
                    "request %s cost %s credits, over its reservation of %s; charged %s (account %r)",
                    meter.request_id, format_credits(the_bill.total), format_credits(meter.reserved),
                    format_credits(settlement.charged), meter.account_id,
                )
            if settlement.late:
                log.warning(
                    "request %s settled after its reservation expired (reservation_ttl=%gs); charged %s of %s "
                    "credits from what account %r had available",
                    meter.request_id, self.config.reservation_ttl, format_credits(settlement.charged),
                    format_credits(the_bill.total), meter.account_id,
                )
            return settlement
        return None

    def _retry_later(self, meter: Meter, the_bill: Bill, release: bool) -> None:
        """Keep trying to settle until it works (or the process ends): a ledger outage
        must not turn into free requests. If the reservation expires meanwhile, the late
        settlement charges from ``available``."""

        async def retry() -> None:
            delay = 1.0
            while True:
                await asyncio.sleep(delay)
                try:
                    ledger = self._ledger()
                    if release:
                        await ledger.release(meter.request_id)
                    else:
                        await ledger.settle(meter.request_id, the_bill.total, the_bill.detail_json())
                except ServiceUnavailable:
                    delay = min(delay * 2, 60.0)
                    continue
                log.info("request %s settled after the ledger came back", meter.request_id)
                return

        self._track(asyncio.ensure_future(retry()))

    def _track(self, task: asyncio.Task[Any]) -> None:
        """Keep a settlement task referenced until it ends (so it is not collected), and
        log it if it fails while nobody awaits it."""
        self._retries.add(task)

        def done(task: asyncio.Task[Any]) -> None:
            self._retries.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("settling a request failed", exc_info=task.exception())

        task.add_done_callback(done)


__all__ = ["AMOUNT_HEADER", "COST_HEADER", "TOKEN_HEADER", "PaymentsSkill"]
