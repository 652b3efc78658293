"""The rule catalogue (``DOMAIN.md``): each rule a pure state machine registered by name.

A rule module defines a frozen msgspec ``Struct`` for its state, another for
its thresholds (defaults from ``DOMAIN.md``, overridable per tenant) and a
:class:`cloud.risk.rules.base.Rule` registered in :data:`cloud.risk.rules.base.CATALOGUE`.
"""
