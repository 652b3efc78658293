"""``[webhooks]``: the outbox dispatcher's settings (part of the cloud config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Standard Webhooks' suggested schedule: entry i is the wait before attempt i+1,
# counted from the failure of attempt i. Entry 0 is the first attempt (immediate).
DEFAULT_RETRY_SCHEDULE_S: tuple[float, ...] = (
    0,
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    10 * 3600,
)


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    retry_schedule_s: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE_S
    jitter_fraction: float = Field(default=0.2, ge=0, lt=1)  # each wait varies by +- this share
    request_timeout_s: float = Field(default=15.0, gt=0, le=300)
    # A claimed delivery whose dispatcher went silent is due again after this long.
    lease_s: float = Field(default=120.0, gt=0)
    retry_after_max_s: float = Field(default=3600.0, ge=0)  # cap on a receiver's Retry-After
    secret_overlap_s: float = Field(default=24 * 3600.0, ge=0)  # old secret still signs this long
    allow_private_targets: bool = False  # SSRF guard off: only for tests and closed networks
    concurrency: int = Field(default=16, ge=1, le=1000)  # requests in flight per dispatcher
    poll_interval_s: float = Field(default=1.0, gt=0, le=60)  # besides LISTEN/NOTIFY wake-ups
    max_logged_body_bytes: int = Field(default=1024, ge=0, le=1024 * 1024)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9102, ge=0, lt=65536)  # 0: no /metrics endpoint

    @field_validator("retry_schedule_s")
    @classmethod
    def _schedule(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            msg = "needs at least one entry (the first attempt)"
            raise ValueError(msg)
        if value[0] != 0:
            msg = "the first entry is the first attempt, which is immediate: it must be 0"
            raise ValueError(msg)
        if any(v < 0 for v in value):
            msg = "waits cannot be negative"
            raise ValueError(msg)
        if len(value) > 50:
            msg = "at most 50 attempts"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _lease_outlives_request(self) -> WebhookSettings:
        if self.lease_s <= self.request_timeout_s:
            msg = (
                f"lease_s ({self.lease_s}) must exceed request_timeout_s "
                f"({self.request_timeout_s}), or a slow request is sent twice"
            )
            raise ValueError(msg)
        return self
