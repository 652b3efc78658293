"""GNSS input of the edge agent: NMEA 0183 framing, sentence parsing and fix assembly.

Three layers, each pure and with its own counts of what it dropped and why:

* :mod:`edge.nmea.framing`: bytes → sentence lines;
* :mod:`edge.nmea.sentences`: a line → a typed partial update (table-driven, on pynmea2);
* :mod:`edge.nmea.assembler`: the updates of one epoch → one :class:`GnssFix`.

:mod:`edge.nmea.replay` wires them together for captures and the agent.
"""
