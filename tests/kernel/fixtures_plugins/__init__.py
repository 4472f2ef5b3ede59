"""Plugin modules for the entry-point discovery tests (tests/kernel/test_plugins.py)."""
