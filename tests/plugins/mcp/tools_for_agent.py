"""Plain tools the served agent has (``tools: [...]`` in the tests' configs)."""

from robutler_specs import tool


def multiply(a: int, b: int) -> int:
    """Multiply two numbers.

    Args:
        a: the first
        b: the second
    """
    return a * b


@tool(scope="owner")
def secret() -> str:
    """Only for the owner."""
    return "the owner's secret"
