"""The tests' fake of Slack: the stand-in in bot/standin (one implementation, shared with `sitrep demo`)."""

from bot.standin import *  # noqa: F403
from bot.standin import __all__ as _standin
from bot.standin.socket_mode import FakeSocketMode

__all__ = [*_standin, "FakeSocketMode"]
