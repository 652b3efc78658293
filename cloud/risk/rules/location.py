"""The location rules of the risk engine: import once to register them in ``CATALOGUE``.

=================  =========================================  ==========================
rule (catalogue)   signals                                    module
=================  =========================================  ==========================
region_exit        region_exit                                :mod:`.region`
forbidden_zone     forbidden_zone                             :mod:`.region`
risk_poi           risk_poi_visit, risk_poi_stay              :mod:`.poi`
resident           resident_learned, not_home, relocation,    :mod:`.resident`
                   night_anomaly
long_stationary    long_stationary                            :mod:`.stationary`
=================  =========================================  ==========================

Gathering (several portfolio cars at one POI) is per tenant, not per
vehicle, so it is not in the catalogue: see :mod:`.gathering`.
"""

from __future__ import annotations

from cloud.risk.rules.base import register
from cloud.risk.rules.poi import RISK_POI
from cloud.risk.rules.region import FORBIDDEN_ZONE, REGION_EXIT
from cloud.risk.rules.resident import RESIDENT
from cloud.risk.rules.stationary import LONG_STATIONARY

register(REGION_EXIT)
register(FORBIDDEN_ZONE)
register(RISK_POI)
register(RESIDENT)
register(LONG_STATIONARY)

#: Catalogue names of the rules this module registers.
LOCATION_RULES = ("region_exit", "forbidden_zone", "risk_poi", "resident", "long_stationary")
