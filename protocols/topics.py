"""The MQTT topic tree. Documented as a table in ``protocols/README.md``.

Device ids are globally unique, so the tenant is not part of the topic: the
cloud resolves it from the device registry, and a device cannot claim another
tenant by choosing a topic. Every device topic lives under
``vgr/v1/dev/{device_id}/`` so a broker ACL pattern on the username (``%u``)
confines each device to its own subtree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

ROOT = "vgr/v1/dev"
INGEST_SHARE_GROUP = "vgr-ingest"


class Channel(StrEnum):
    """The last level of a device topic, with its direction in the docstring table."""

    FIX = "fix"  # device -> cloud, QoS 1, a FixBatch
    EVENT = "event"  # device -> cloud, QoS 1, an EventBatch
    STATUS = "status"  # device -> cloud, QoS 1, retained, Status (last will: offline)
    CMD = "cmd"  # cloud -> device, QoS 1, a SignedCommand
    CMD_ACK = "cmd/ack"  # device -> cloud, QoS 1, a CommandAck
    POLICY = "policy"  # cloud -> device, QoS 1, retained, a PolicyUpdate
    ACK = "ack"  # cloud -> device, QoS 1, a CommitAck (sent after the database commit)


DEVICE_PUBLISHES = (Channel.FIX, Channel.EVENT, Channel.STATUS, Channel.CMD_ACK)
DEVICE_SUBSCRIBES = (Channel.CMD, Channel.POLICY, Channel.ACK)

_DEVICE_ID_FORBIDDEN = set("/+#$\x00 ")


def valid_device_id(device_id: str) -> bool:
    """A device id must be usable as one topic level and as a broker username."""
    return 1 <= len(device_id) <= 64 and not (set(device_id) & _DEVICE_ID_FORBIDDEN)


def device_topic(device_id: str, channel: Channel) -> str:
    """The topic of ``channel`` for one device; raises ValueError for an unusable id."""
    if not valid_device_id(device_id):
        msg = f"device id {device_id!r} cannot be used in a topic"
        raise ValueError(msg)
    return f"{ROOT}/{device_id}/{channel.value}"


def wildcard(channel: Channel) -> str:
    """Subscription filter matching ``channel`` for every device."""
    return f"{ROOT}/+/{channel.value}"


def shared(filter_: str, group: str = INGEST_SHARE_GROUP) -> str:
    """An MQTT 5 shared subscription, so several workers split the load."""
    return f"$share/{group}/{filter_}"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    device_id: str
    channel: Channel


def parse_topic(topic: str) -> ParsedTopic | None:
    """Split a device topic into its device id and channel; None when it is not one."""
    prefix = ROOT + "/"
    if not topic.startswith(prefix):
        return None
    device_id, sep, rest = topic[len(prefix) :].partition("/")
    if not sep or not valid_device_id(device_id):
        return None
    try:
        channel = Channel(rest)
    except ValueError:
        return None
    return ParsedTopic(device_id, channel)


def broker_acl_patterns() -> list[str]:
    """Mosquitto ``pattern`` lines confining a device (username = device id) to its subtree."""
    lines = [f"pattern write {ROOT}/%u/{c.value}" for c in DEVICE_PUBLISHES]
    lines += [f"pattern read {ROOT}/%u/{c.value}" for c in DEVICE_SUBSCRIBES]
    return lines
