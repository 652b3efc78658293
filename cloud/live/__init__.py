"""The live feed behind the recovery map: positions, alerts and case changes over a WebSocket.

Pure parts: :mod:`cloud.live.buffer` (each client's bounded latest-per-object
buffer), :mod:`cloud.live.scope` (what each role may receive),
:mod:`cloud.live.messages` (the events and their JSON shape). I/O:
:mod:`cloud.live.source` (the database queries) and :mod:`cloud.live.hub`
(one polling loop per API process, shared by every client). See
docs/live-map.md.
"""
