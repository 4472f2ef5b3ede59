"""The registry of agents other kernels publish: registrations, their backends, the service."""

from __future__ import annotations

from .backend import Backend, Registration, UpsertOutcome
from .service import RegistrationRequest, Registry, make_backend

__all__ = ["Backend", "Registration", "RegistrationRequest", "Registry", "UpsertOutcome", "make_backend"]
