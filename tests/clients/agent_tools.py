"""The served agent's own tool (``tools: ["tests.clients.agent_tools:get_weather"]``): it runs
inside the server, never on the client."""


def get_weather(city: str) -> str:
    """Current weather for a city.

    Args:
        city: the city name
    """
    return f"Sunny in {city}"
