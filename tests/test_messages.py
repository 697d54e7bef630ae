"""Reading the messages that reactions point at: one Slack call for the messages expected in a channel,
thread replies and messages beyond one page read one by one, nothing kept past its time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk import WebClient

from handlers import messages
from handlers.messages import KEEP_SECONDS, MessageReader
from tests.fakeslack import FakeSlack

BOB = "U0BOB"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as f:
        f.add_user(BOB, "bob")
        yield f
        assert not f.internal_errors, f.internal_errors


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _reader(fake: FakeSlack, clock: Clock | None = None) -> MessageReader:
    client = WebClient(token=fake.bot_token, base_url=fake.api_url)
    return MessageReader(client, clock=clock or Clock())


def _reads(fake: FakeSlack) -> int:
    return len(fake.calls_to("conversations.history")) + len(fake.calls_to("conversations.replies"))


def test_one_message_alone_is_one_call(fake: FakeSlack) -> None:
    channel = fake.add_channel("inc-one", [BOB], bot_member=True)
    ts = fake.post_as_user(channel, BOB, "restarted the worker")["ts"]
    reader = _reader(fake)
    message = reader.read(channel, ts)
    assert message is not None and message["text"] == "restarted the worker"
    assert _reads(fake) == reader.calls == 1


def test_the_messages_expected_in_a_channel_come_with_one_call(fake: FakeSlack) -> None:
    channel = fake.add_channel("inc-many", [BOB], bot_member=True)
    other = fake.add_channel("inc-other", [BOB], bot_member=True)
    posted = [fake.post_as_user(channel, BOB, f"step {i}")["ts"] for i in range(5)]
    elsewhere = fake.post_as_user(other, BOB, "elsewhere")["ts"]
    reader = _reader(fake)
    for ts in posted[1:4]:
        reader.expect(channel, ts)
    reader.expect(other, elsewhere)

    texts = [(reader.read(channel, ts) or {}).get("text") for ts in (posted[2], posted[1], posted[3])]

    assert texts == ["step 2", "step 1", "step 3"]
    assert _reads(fake) == 1  # the span posted[1]..posted[3]; the other channel's message is not read
    assert (reader.read(other, elsewhere) or {}).get("text") == "elsewhere"
    assert _reads(fake) == 2


def test_a_thread_reply_is_read_on_its_own(fake: FakeSlack) -> None:
    channel = fake.add_channel("inc-thread", [BOB], bot_member=True)
    parent = fake.post_as_user(channel, BOB, "investigating")["ts"]
    reply = fake.post_as_user(channel, BOB, "found it: the cache", thread_ts=parent)["ts"]
    later = fake.post_as_user(channel, BOB, "rolled back")["ts"]
    reader = _reader(fake)
    reader.expect(channel, reply)
    reader.expect(channel, later)

    assert (reader.read(channel, reply) or {}).get("text") == "found it: the cache"
    assert (reader.read(channel, later) or {}).get("text") == "rolled back"
    assert len(fake.calls_to("conversations.replies")) == 1


def test_messages_beyond_one_page_of_the_span_are_read_one_by_one(
    fake: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(messages, "SPAN_LIMIT", 3)
    channel = fake.add_channel("inc-busy", [BOB], bot_member=True)
    posted = [fake.post_as_user(channel, BOB, f"line {i}")["ts"] for i in range(6)]
    reader = _reader(fake)
    reader.expect(channel, posted[0])
    reader.expect(channel, posted[5])

    assert (reader.read(channel, posted[0]) or {}).get("text") == "line 0"  # beyond the page: its own call
    assert (reader.read(channel, posted[5]) or {}).get("text") == "line 5"  # in the page: no call
    assert _reads(fake) == 2


def test_nothing_is_kept_past_its_time(fake: FakeSlack) -> None:
    channel = fake.add_channel("inc-old", [BOB], bot_member=True)
    first, second, third = (fake.post_as_user(channel, BOB, f"m{i}")["ts"] for i in range(3))
    clock = Clock()
    reader = _reader(fake, clock)
    reader.expect(channel, first)  # its event was a retry already done: no work comes for it
    clock.now += KEEP_SECONDS + 1
    reader.expect(channel, third)
    reader.read(channel, second)  # reads second..third, not from first
    span = fake.calls_to("conversations.history")[-1].args
    assert (span["oldest"], span["latest"]) == (second, third)

    clock.now += KEEP_SECONDS + 1  # third, read ahead, was never asked for: it is read again, fresh
    fake.edit_as_user(channel, third, "m2, edited")
    assert (reader.read(channel, third) or {}).get("text") == "m2, edited"
    assert _reads(fake) == 2


def test_a_deleted_message_reads_as_none(fake: FakeSlack) -> None:
    channel = fake.add_channel("inc-gone", [BOB], bot_member=True)
    ts = fake.post_as_user(channel, BOB, "oops")["ts"]
    fake.delete_as_user(channel, ts)
    assert _reader(fake).read(channel, ts) is None


def test_a_message_expected_twice_then_read_ahead_leaves_nothing_behind(fake: FakeSlack) -> None:
    # A retried delivery notes the same message again after it was read ahead (this once failed every later read).
    channel = fake.add_channel("inc-retry", [BOB], bot_member=True)
    first, second, third = (fake.post_as_user(channel, BOB, f"m{i}")["ts"] for i in range(3))
    clock = Clock()
    reader = _reader(fake, clock)
    reader.expect(channel, first)
    reader.expect(channel, second)
    assert (reader.read(channel, first) or {}).get("text") == "m0"
    reader.expect(channel, second)
    assert (reader.read(channel, second) or {}).get("text") == "m1"
    clock.now += 2  # past the next sweep of old entries
    assert (reader.read(channel, third) or {}).get("text") == "m2"
    assert _reads(fake) == 2
