"""The tests' fake of Slack: the stand-in in standin (one implementation, shared with `sitrep demo`)."""

from standin import *  # noqa: F403
from standin import __all__ as _standin
from standin.socket_mode import FakeSocketMode

__all__ = [*_standin, "FakeSocketMode"]
