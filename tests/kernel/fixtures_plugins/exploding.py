"""A plugin that raises something other than ImportError while importing."""

from __future__ import annotations

raise RuntimeError("the plugin's module-level setup crashed")
