"""A plugin whose SDK is not installed: importing it fails."""

from __future__ import annotations

import robutler_test_sdk_that_is_not_installed  # noqa: F401
