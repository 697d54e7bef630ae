"""Typed errors of the domain. Those a person caused carry a message meant for that person."""

from __future__ import annotations


class SitrepError(Exception):
    """Base of the errors a user caused; `str(error)` is a helpful sentence for them."""


class InvalidInput(SitrepError):
    """The words were wrong: the message says what is accepted."""


class NotAnIncidentChannel(SitrepError):
    def __init__(self, command: str = "This command") -> None:
        super().__init__(
            f"{command} works inside an incident channel. Run it there, or use `/incident list` to find one."
        )


class NotFound(SitrepError):
    pass


class InvalidState(SitrepError):
    """The incident is not in a state that allows this (e.g. resolving a resolved incident)."""


class BadPayload(InvalidInput):
    """A request body from outside (a webhook, the API) without the expected shape; `field` names where."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name


class NotAllowed(SitrepError):
    """The person may not do this here (e.g. change an incident whose channel they are not in)."""
