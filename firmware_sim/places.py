"""A small catalogue of places in eight Chinese cities, for the simulator.

SYNTHETIC: city centres are the usual reference points of each city; every
other coordinate (homes, workplaces, and the second-mortgage lender 二押,
pawnshop 典当行, used-car market 二手车市场, vehicle registration office 车管所
and tow yard 拖车场 of each city) is a point we chose a few kilometres from the
centre, inside the city's prefecture boundary. None of them is a real
business. Coordinates are WGS-84 (lon, lat). Beijing and Shanghai are
municipalities: their city code is the province code, as in DataV and Amap.

References look like ``shanghai.second_mortgage``, ``beijing.home.2``,
``wuhan.work.0`` or ``chengdu.centre`` (see :func:`place`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from firmware_sim.receiver import Environment


class PlaceKind(StrEnum):
    CENTRE = "centre"
    HOME = "home"
    WORK = "work"
    SECOND_MORTGAGE = "second_mortgage"
    PAWNSHOP = "pawnshop"
    USED_CAR_MARKET = "used_car_market"
    REGISTRATION_OFFICE = "registration_office"
    TOW_YARD = "tow_yard"
    LEISURE = "leisure"  # drawn at run time: shops, restaurants, parks
    OTHER = "other"


RISK_KINDS = (
    PlaceKind.SECOND_MORTGAGE,
    PlaceKind.PAWNSHOP,
    PlaceKind.USED_CAR_MARKET,
    PlaceKind.REGISTRATION_OFFICE,
    PlaceKind.TOW_YARD,
)


@dataclass(frozen=True, slots=True)
class Place:
    id: str
    kind: PlaceKind
    lon: float
    lat: float
    alt_m: float
    city: str
    environment: Environment = Environment.URBAN  # where a car parks there


@dataclass(frozen=True, slots=True)
class City:
    id: str
    name: str
    province: str  # GB/T 2260 adcode of the province
    adcode: str  # adcode of the prefecture-level city
    centre: Place
    homes: tuple[Place, ...]
    works: tuple[Place, ...]
    risk: dict[PlaceKind, Place]

    def places(self) -> list[Place]:
        return [self.centre, *self.homes, *self.works, *self.risk.values()]


PROVINCE_NAMES = {
    "110000": "北京市",
    "310000": "上海市",
    "320000": "江苏省",
    "330000": "浙江省",
    "410000": "河南省",
    "420000": "湖北省",
    "440000": "广东省",
    "510000": "四川省",
}

_P = tuple[float, float]
# id: name, province, city adcode, altitude, centre, 3 homes, 3 works,
#     (second mortgage, pawnshop, used-car market, registration office, tow yard)
_RAW: dict[str, tuple[str, str, str, float, _P, tuple[_P, ...], tuple[_P, ...], tuple[_P, ...]]] = {
    "shanghai": ("上海", "310000", "310000", 4.0, (121.4737, 31.2304),
                 ((121.38966, 31.25735), (121.53673, 31.18548), (121.43168, 31.14955)),
                 ((121.48000, 31.23399), (121.52097, 31.23848), (121.41067, 31.20794)),
                 ((121.44218, 31.27532), (121.49471, 31.21064), (121.35814, 31.28879),
                  (121.37390, 31.19447), (121.56825, 31.29777))),
    "beijing": ("北京", "110000", "110000", 44.0, (116.3975, 39.9087),
                ((116.29880, 39.89611), (116.48763, 39.89675), (116.40963, 39.82072)),
                ((116.40124, 39.91451), (116.43787, 39.93591), (116.35129, 39.86230)),
                ((116.33780, 39.93412), (116.43067, 39.90057), (116.24788, 39.90986),
                 (116.32457, 39.83491), (116.44486, 40.00747))),
    "guangzhou": ("广州", "440000", "440100", 21.0, (113.2644, 23.1291),
                  ((113.21587, 23.06666), (113.32675, 23.16954), (113.33921, 23.07347)),
                  ((113.26214, 23.13524), (113.26729, 23.17024), (113.27282, 23.07123)),
                  ((113.20964, 23.11469), (113.29021, 23.14134), (113.24120, 23.19850),
                   (113.27812, 23.03737), (113.21639, 23.22463))),
    "shenzhen": ("深圳", "440000", "440300", 18.0, (114.0579, 22.5431),
                 ((113.98009, 22.59700), (114.11626, 22.62395), (114.02872, 22.64191)),
                 ((114.06374, 22.55029), (114.10167, 22.55657), (113.99954, 22.56556)),
                 ((114.02872, 22.58802), (114.07735, 22.57185), (113.95091, 22.61946),
                  (113.96550, 22.57903), (114.14544, 22.61047))),
    "chengdu": ("成都", "510000", "510100", 500.0, (104.0665, 30.5723),
                ((104.11032, 30.50546), (104.05208, 30.64135), (104.15883, 30.61114)),
                ((104.05902, 30.57301), (104.02450, 30.59209), (104.13122, 30.55486)),
                ((104.05694, 30.52057), (104.06527, 30.59899), (104.11083, 30.46405),
                 (104.16926, 30.54497), (103.94427, 30.57266))),
    "nanjing": ("南京", "320000", "320100", 15.0, (118.7969, 32.0603),
                ((118.88746, 32.05956), (118.71901, 32.08407), (118.80411, 32.14856)),
                ((118.79237, 32.05508), (118.75534, 32.03888), (118.84760, 32.09984)),
                ((118.84491, 32.02731), (118.76900, 32.07273), (118.93003, 32.03923),
                 (118.87702, 32.12325), (118.73445, 31.96934))),
    "hangzhou": ("杭州", "330000", "330100", 12.0, (120.1551, 30.2741),
                 ((120.21288, 30.33241), (120.08488, 30.23881), (120.08136, 30.33552)),
                 ((120.15688, 30.26781), (120.14789, 30.23335), (120.15201, 30.33243)),
                 ((120.21464, 30.28406), (120.12648, 30.26398), (120.25777, 30.34698),
                  (120.14980, 30.36658), (120.19639, 30.17508))),
    "wuhan": ("武汉", "420000", "420100", 24.0, (114.3054, 30.5931),
              ((114.27572, 30.66547), (114.30568, 30.52294), (114.20662, 30.56866)),
              ((114.31262, 30.59128), (114.34278, 30.56733), (114.24517, 30.61995)),
              ((114.32525, 30.64262), (114.30123, 30.56663), (114.28357, 30.70633),
               (114.20970, 30.63538), (114.42573, 30.57447))),
}  # fmt: skip

# Where a car parks: street, multi-storey car park (degraded sky) or open lot.
_HOME_ENV = (Environment.URBAN, Environment.CARPARK, Environment.URBAN)
_WORK_ENV = (Environment.URBAN, Environment.CARPARK, Environment.URBAN)
_RISK_ENV = (Environment.URBAN, Environment.URBAN, Environment.OPEN, Environment.URBAN,
             Environment.OPEN)  # fmt: skip


def _build() -> dict[str, City]:
    cities: dict[str, City] = {}
    for cid, (name, prov, adcode, alt, centre, homes, works, risk) in _RAW.items():

        def mk(
            suffix: str, kind: PlaceKind, p: _P, env: Environment, cid: str = cid, alt: float = alt
        ) -> Place:
            return Place(f"{cid}.{suffix}", kind, p[0], p[1], alt, cid, env)

        cities[cid] = City(
            id=cid,
            name=name,
            province=prov,
            adcode=adcode,
            centre=mk("centre", PlaceKind.CENTRE, centre, Environment.URBAN),
            homes=tuple(
                mk(f"home.{i}", PlaceKind.HOME, p, _HOME_ENV[i]) for i, p in enumerate(homes)
            ),
            works=tuple(
                mk(f"work.{i}", PlaceKind.WORK, p, _WORK_ENV[i]) for i, p in enumerate(works)
            ),
            risk={
                kind: mk(kind.value, kind, p, _RISK_ENV[i])
                for i, (kind, p) in enumerate(zip(RISK_KINDS, risk, strict=True))
            },
        )
    return cities


CITIES: dict[str, City] = _build()


def place(ref: str) -> Place:
    """Resolve ``city.kind`` or ``city.kind.index``; raises KeyError naming what is unknown."""
    parts = ref.split(".")
    city = CITIES.get(parts[0])
    if city is None or len(parts) not in (2, 3):
        raise KeyError(f"unknown place {ref!r} (cities: {', '.join(CITIES)})")
    kind = parts[1]
    if kind in ("home", "work") and len(parts) == 3 and parts[2].isdigit():
        pool = city.homes if kind == "home" else city.works
        if int(parts[2]) < len(pool):
            return pool[int(parts[2])]
    elif len(parts) == 2 and kind == "centre":
        return city.centre
    elif len(parts) == 2 and kind in PlaceKind.__members__.values():
        found = city.risk.get(PlaceKind(kind))
        if found is not None:
            return found
    raise KeyError(f"unknown place {ref!r}")


def nearest_city(lon: float, lat: float) -> City:
    """The catalogue city whose centre is nearest (flat-earth distance is enough here)."""
    return min(
        CITIES.values(),
        key=lambda c: (c.centre.lon - lon) ** 2 + (c.centre.lat - lat) ** 2,
    )
