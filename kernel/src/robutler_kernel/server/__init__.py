"""The HTTP surface: a Starlette app with raw-ASGI endpoints on the hot path."""
