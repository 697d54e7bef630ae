"""The tests' fake PagerDuty is the stand-in of `sitrep demo` (standin/pagerduty.py), which checks every request
against PagerDuty's published OpenAPI when jsonschema is installed: here it must be (the test extra), so that a
request PagerDuty would refuse fails the test instead of passing unchecked."""

from __future__ import annotations

import jsonschema  # noqa: F401 - required: without it the stand-in checks only PagerDuty's documented rules

from standin.pagerduty import API_TOKEN, ROUTING_KEY, SCHEMA_CHECKS, FakePagerDuty

assert SCHEMA_CHECKS, "the fake PagerDuty of the tests checks requests against PagerDuty's OpenAPI"

__all__ = ["API_TOKEN", "ROUTING_KEY", "FakePagerDuty"]
