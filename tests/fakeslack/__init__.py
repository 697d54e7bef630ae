"""A fake of Slack for sitrep's tests: Web API server, Socket Mode endpoint and request drivers.

    with FakeSlack() as fake, FakeSocketMode(fake) as sm:
        client = WebClient(token=fake.bot_token, base_url=fake.api_url)
        ...

See tests/test_fakeslack.py for examples of every feature.
"""

from .blocks import BlockError, validate_blocks, validate_view
from .driver import DriverResponse, SlackDriver, SocketModeDriver
from .payloads import Payloads
from .server import Call, Channel, FakeSlack, SlackError
from .socket_mode import FakeSocketMode

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
