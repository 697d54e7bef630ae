"""The tests' fake of Slack: the stand-in in bot/standin (one implementation, shared with `sitrep demo`)."""

from bot.standin import (
    BlockError,
    Call,
    Channel,
    DriverResponse,
    FakeSlack,
    Payloads,
    SlackDriver,
    SlackError,
    SocketModeDriver,
    validate_blocks,
    validate_view,
)
from bot.standin.socket_mode import FakeSocketMode

__all__ = [
    "BlockError",
    "Call",
    "Channel",
    "DriverResponse",
    "FakeSlack",
    "FakeSocketMode",
    "Payloads",
    "SlackDriver",
    "SlackError",
    "SocketModeDriver",
    "validate_blocks",
    "validate_view",
]
