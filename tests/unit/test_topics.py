from __future__ import annotations

import pytest

from protocols.topics import (
    Channel,
    broker_acl_patterns,
    device_topic,
    parse_topic,
    shared,
    wildcard,
)


@pytest.mark.parametrize("channel", list(Channel))
def test_topic_round_trip(channel: Channel) -> None:
    topic = device_topic("860000000000001", channel)
    parsed = parse_topic(topic)
    assert parsed is not None
    assert parsed.device_id == "860000000000001"
    assert parsed.channel is channel


@pytest.mark.parametrize("bad", ["", "a/b", "a+b", "#", "$SYS", "x" * 65, "with space"])
def test_unusable_device_ids_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="cannot be used"):
        device_topic(bad, Channel.FIX)


@pytest.mark.parametrize(
    "topic",
    ["vgr/v1/dev/d1", "vgr/v1/dev/d1/nope", "other/v1/dev/d1/fix", "vgr/v1/dev//fix", ""],
)
def test_non_device_topics_are_not_parsed(topic: str) -> None:
    assert parse_topic(topic) is None


def test_shared_subscription_and_acl() -> None:
    assert shared(wildcard(Channel.FIX)) == "$share/vgr-ingest/vgr/v1/dev/+/fix"
    acl = broker_acl_patterns()
    assert "pattern write vgr/v1/dev/%u/fix" in acl
    assert "pattern read vgr/v1/dev/%u/cmd" in acl
    writable = {line.rsplit("%u/", 1)[1] for line in acl if line.startswith("pattern write")}
    # A device never gets write access to its own command, policy or commit-ack topics.
    assert writable == {"fix", "event", "status", "cmd/ack"}
