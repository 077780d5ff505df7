"""Errors the engine raises; the web layer maps each to one HTTP status."""

from __future__ import annotations


class GuichetError(Exception):
    """Base class: ``message`` is safe to show to the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(GuichetError):
    """The thing does not exist, or the caller may not know it exists (404)."""


class Forbidden(GuichetError):
    """The caller is known but may not do this (403)."""


class Conflict(GuichetError):
    """The state moved on under the caller: task no longer ready, claimed by another (409)."""


class ValidationFailed(GuichetError):
    """Input is invalid; ``errors`` maps each field to its message (422)."""

    def __init__(self, message: str, errors: dict[str, str]) -> None:
        super().__init__(message)
        self.errors = errors


class DeployFailed(GuichetError):
    """A BPMN/DMN file is invalid; ``errors`` lists ``{"file", "element", "message"}`` (422)."""

    def __init__(self, errors: list[dict[str, str | None]]) -> None:
        first = errors[0] if errors else {"message": "invalid"}
        super().__init__(f"{len(errors)} error(s) in the deployment: {first['message']}")
        self.errors = errors


class SandboxError(GuichetError):
    """A script or expression was refused by the sandbox or failed inside it."""


class ProcessError(GuichetError):
    """The process could not move on (a script failed, no decision matched...).

    The step is rolled back; ``element`` names the BPMN element at fault.
    """

    def __init__(self, message: str, element: str | None = None) -> None:
        super().__init__(message)
        self.element = element
