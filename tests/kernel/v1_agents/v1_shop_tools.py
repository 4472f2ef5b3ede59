"""Plain V1 tool functions (the V1 implementations a migrated config points at)."""


def lookup_order(order_id: str) -> str:
    """Find an order.

    Args:
        order_id: the order's id
    """
    return f"order {order_id}: shipped"


def refund(order_id: str, amount: float) -> str:
    """Refund part of an order."""
    return f"refunded {amount} on {order_id}"


def order_count() -> int:
    """How many orders there are."""
    return 42
