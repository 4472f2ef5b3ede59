"""Plain-Python tools referenced from agent config in tests (``module:function``)."""


def get_weather(city: str) -> str:
    """Current weather for a city.

    Args:
        city: the city name
    """
    return f"Sunny in {city}"
