"""Per-tenant anomaly models over vehicle-day features (see docs/anomaly-model.md).

- :mod:`~cloud.risk.anomaly.features`: pure per vehicle-day features;
- :mod:`~cloud.risk.anomaly.model`: model types by key (:data:`MODELS`), the
  isolation forest, :func:`score_day`;
- :mod:`~cloud.risk.anomaly.jobs` and :mod:`~cloud.risk.anomaly.store`: training
  and scoring runs over the fixes table; :mod:`~cloud.risk.anomaly.cli`: the commands.

Importing this package does not import scikit-learn; import the submodules.
"""
