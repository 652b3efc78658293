"""The asset engine: the recovery queue, recovery cases and chase mode.

- :mod:`cloud.recovery.worklist`: ``queue()``, the tenant's cars ranked by
  :mod:`cloud.recovery.ranking` with what a team needs to find each one
  (positions, live status, resident point, recent :mod:`~cloud.recovery.stays`).
- :mod:`cloud.recovery.workflow`: the case workflow as a pure table.
- :mod:`cloud.recovery.cases`: the audited service functions.
- :mod:`cloud.recovery.commands` and :mod:`cloud.recovery.mqtt`: signed
  ``chase_mode`` commands, their publishing and the trackers' acks.

See ``docs/recovery.md``.
"""
