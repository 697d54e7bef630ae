"""A local stand-in for Slack: a stateful Web API server that enforces Slack's rules, and drivers that
deliver correctly signed requests to the bot. `sitrep demo` plays an incident against it; the tests use it
(through tests/fakeslack) as their fake of Slack. The Socket Mode endpoint (`standin.socket_mode`)
needs the `websockets` package of the test extra.

    with FakeSlack() as fake:
        client = WebClient(token=fake.bot_token, base_url=fake.api_url)
        ...

See tests/test_fakeslack.py for examples of every feature.
"""

from .blocks import BlockError, validate_blocks, validate_view
from .driver import DriverResponse, SlackDriver, SocketModeDriver
from .payloads import Payloads
from .server import Call, Channel, FakeSlack, SlackError

__all__ = [
    "BlockError",
    "Call",
    "Channel",
    "DriverResponse",
    "FakeSlack",
    "Payloads",
    "SlackDriver",
    "SlackError",
    "SocketModeDriver",
    "validate_blocks",
    "validate_view",
]
