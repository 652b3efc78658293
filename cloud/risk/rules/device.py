"""The device rules (``DOMAIN.md`` catalogue), registered in ``CATALOGUE`` on import.

The engine imports this module once. Each rule is a pure state machine over one
vehicle's inputs in GNSS order; see each module for thresholds and episode keys:

| rule (signals) | module |
|---|---|
| ``offline`` | :mod:`cloud.risk.rules.offline` |
| ``power_cut`` (``power_cut``, ``device_removed``) | :mod:`cloud.risk.rules.power` |
| ``tamper``, ``low_battery`` | :mod:`cloud.risk.rules.device_health` |
| ``jamming`` | :mod:`cloud.risk.rules.jamming` |
| ``spoofing`` | :mod:`cloud.risk.rules.spoofing` |
| ``gs_ip_mismatch`` | :mod:`cloud.risk.rules.ip_mismatch` |
| ``device_separation`` | :mod:`cloud.risk.rules.separation` |
| ``tracker_on_other_vehicle`` | :mod:`cloud.risk.rules.other_vehicle` |
| ``blind_area`` | :mod:`cloud.risk.rules.blind_area` |

What these rules expect from the worker:

- **late records**: add :data:`cloud.risk.model.LATE_FLAG` to a ``FixIn``'s or
  ``EventIn``'s ``flags`` when ``received_at - time`` exceeds ~2 min (stored on
  the device, uploaded later). Offline, removal, jamming and blind-area
  decisions and episode keys depend on it, and since it is derived from stored
  columns every re-run and backtest sees the same flag the live run saw.
- **late data re-runs from a snapshot** (``cloud.risk.engine``): the rules emit
  the episodes the full GNSS-ordered history implies, with the same keys a live
  tick chose. When a burst shows a live ``offline`` or ``device_removed`` alert
  was wrong, they emit a RESOLVE for that key even if the snapshot predates the
  alert. So: OPEN of an existing episode is an update (severity = max of the
  two); RESOLVE of an episode with no alert is a no-op. As a safety net for
  rules that cannot know, alerts fired after the snapshot that the re-run does
  not raise again could be resolved as "superseded by late data".
- **session events**: ``EventIn(kind="session", detail={"ip": ...})`` at the
  start of each link session, for ``gs_ip_mismatch``.
"""

from __future__ import annotations

from cloud.risk.rules import (
    blind_area,
    device_health,
    ip_mismatch,
    jamming,
    offline,
    other_vehicle,
    power,
    separation,
    spoofing,
)
from cloud.risk.rules.base import register

register(offline.RULE)
register(power.RULE)
register(device_health.TAMPER_RULE)
register(device_health.LOW_BATTERY_RULE)
register(jamming.RULE)
register(spoofing.RULE)
register(ip_mismatch.RULE)
register(separation.RULE)
register(other_vehicle.RULE)
register(blind_area.RULE)

#: Catalogue names of the rules this module registers.
DEVICE_RULES = (
    offline.NAME,
    power.CUT,
    device_health.TAMPER,
    device_health.LOW,
    jamming.NAME,
    spoofing.NAME,
    ip_mismatch.NAME,
    separation.NAME,
    other_vehicle.NAME,
    blind_area.NAME,
)
