"""The [webhooks] settings and the event vocabulary."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cloud.config import parse_config
from cloud.webhooks.config import WebhookSettings
from cloud.webhooks.events import (
    EVENT_TYPES,
    MESSAGE_ID,
    WebhookError,
    check_event_type,
    check_message_id,
    derive_message_id,
    new_message_id,
)
from protocols.configfile import ConfigError


def test_defaults() -> None:
    s = WebhookSettings()
    assert s.request_timeout_s == 15
    assert s.secret_overlap_s == 24 * 3600
    assert s.allow_private_targets is False
    assert s.jitter_fraction == 0.2


def test_cloud_config_has_a_webhooks_section_with_env_override() -> None:
    text = 'kind = "cloud"\n[webhooks]\nretry_schedule_s = [0, 0.2, 0.5]\njitter_fraction = 0\n'
    env = {"VGR_CLOUD__WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true"}
    cfg = parse_config(text, environ=env, source="t")
    wh = cfg.webhooks
    assert list(wh.retry_schedule_s) == [0, 0.2, 0.5]
    assert wh.allow_private_targets


def test_unknown_webhook_key_is_named() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config('kind = "cloud"\n[webhooks]\ntimeout = 3\n', environ={}, source="t")
    assert err.value.problems[0].startswith("webhooks.timeout:")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"retry_schedule_s": ()}, "at least one"),
        ({"retry_schedule_s": (5, 10)}, "must be 0"),
        ({"retry_schedule_s": (0, -1)}, "negative"),
        ({"retry_schedule_s": (0,) * 51}, "at most 50"),
        ({"request_timeout_s": 30, "lease_s": 30}, "must exceed"),
        ({"jitter_fraction": 1.0}, "less than 1"),
    ],
)
def test_bad_settings(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        WebhookSettings.model_validate(kwargs)


def test_event_types() -> None:
    assert set(EVENT_TYPES) == {
        "alert.opened", "alert.resolved", "vehicle.risk_changed", "device.offline",
        "device.unauthorized",
    }  # fmt: skip
    assert check_event_type("alert.opened") == "alert.opened"
    with pytest.raises(WebhookError) as err:
        check_event_type("alert.closed")
    assert err.value.code == "unknown_event_type"


def test_message_ids() -> None:
    a = derive_message_id("acme", "alert-17", "alert.opened")
    assert a == derive_message_id("acme", "alert-17", "alert.opened")
    assert a != derive_message_id("acme", "alert-17", "alert.resolved")
    assert a != derive_message_id("acme", "alert-1", "7alert.opened")  # parts stay apart
    assert MESSAGE_ID.match(a)
    assert MESSAGE_ID.match(new_message_id())
    assert check_message_id("msg_alert:17.opened") == "msg_alert:17.opened"
    for bad in ("alert-17", "msg_", "msg_a b", "msg_" + "x" * 121):
        with pytest.raises(WebhookError):
            check_message_id(bad)
