"""The names every plugin shares, defined once."""

from __future__ import annotations

import pluggy

#: The project name: the pluggy marker name and the hook namespace.
PROJECT_NAME = "robutler"

#: The entry point group plugins register under::
#:
#:     [project.entry-points."robutler.plugins"]
#:     openai = "robutler_plugin_openai"
ENTRY_POINT_GROUP = "robutler.plugins"

#: Marks a hook specification (used by ``robutler_specs.hookspecs`` only).
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

#: Marks a hook implementation on a Skill method or a plugin module function.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["ENTRY_POINT_GROUP", "PROJECT_NAME", "hookimpl", "hookspec"]
