#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 machine (run as root, or with sudo available).
#   1. Debian packages the project needs, installed only when missing;
#   2. TimescaleDB (Apache edition) built from Debian's source package when not installed;
#   3. a virtualenv at .venv with the project installed editable with its dev extras.
# A second run finds everything in place and changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STATE="$ROOT/.setup"
mkdir -p "$STATE"

say() { printf '[setup] %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# ---------------------------------------------------------------- Debian packages
PG_MAJOR=""
if command -v pg_config >/dev/null 2>&1; then
    PG_MAJOR=$(pg_config --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
fi
[ -n "$PG_MAJOR" ] || PG_MAJOR=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
[ -n "$PG_MAJOR" ] || PG_MAJOR=15

PKGS=(python3 python3-venv python3-dev postgresql "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR"
      mosquitto mosquitto-clients cmake build-essential libssl-dev dpkg-dev git
      chromium fonts-wqy-microhei)  # the browser tests and `make screenshots` drive Debian's
      # /usr/bin/chromium; the font draws the pages' Chinese (plates, 中文 switch) in screenshots
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    # policy-rc.d keeps the packaged system services from starting: tests run private instances.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    say "Debian packages: all present"
fi

# Stop the system-wide services Debian may have started; VGR never uses them.
for svc in mosquitto; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
        as_root systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
done

# ---------------------------------------------------------------- TimescaleDB
PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config"
[ -x "$PG_CONFIG" ] || PG_CONFIG=$(command -v pg_config)
EXT_DIR=$("$PG_CONFIG" --sharedir)/extension
if ls "$EXT_DIR"/timescaledb.control >/dev/null 2>&1 && ls "$("$PG_CONFIG" --pkglibdir)"/timescaledb-*.so >/dev/null 2>&1; then
    say "TimescaleDB: installed for PostgreSQL $PG_MAJOR"
else
    say "TimescaleDB: building from Debian's source package (trixie) for PostgreSQL $PG_MAJOR"
    APT_DIR="$STATE/apt-src"
    mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/archives/partial" "$APT_DIR/build"
    echo "deb-src http://deb.debian.org/debian trixie main" > "$APT_DIR/sources.list"
    APT_OPTS=(-o "Dir::Etc::SourceList=$APT_DIR/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
              -o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::Cache::Archives=$APT_DIR/archives"
              -o "APT::Get::AllowUnauthenticated=false" -o "Acquire::Languages=none")
    apt-get "${APT_OPTS[@]}" update -qq
    rm -rf "$APT_DIR/build"/*
    (cd "$APT_DIR/build" && apt-get "${APT_OPTS[@]}" source --download-only -qq timescaledb)
    ORIG=$(ls "$APT_DIR/build"/timescaledb_*.orig.tar.* | head -1)
    mkdir -p "$APT_DIR/build/src"
    tar -xf "$ORIG" -C "$APT_DIR/build/src" --strip-components=1
    (
        cd "$APT_DIR/build/src"
        ./bootstrap -DAPACHE_ONLY=1 -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
            -DPG_CONFIG="$PG_CONFIG" >"$STATE/timescaledb-bootstrap.log" 2>&1
        cd build
        make -j"$(nproc)" >"$STATE/timescaledb-build.log" 2>&1
        as_root make install >"$STATE/timescaledb-install.log" 2>&1
    ) || { say "TimescaleDB build failed; logs in $STATE/timescaledb-*.log"; exit 1; }
    say "TimescaleDB: installed ($(ls "$EXT_DIR"/timescaledb--*.sql | sed -E 's/.*--([0-9.]+)\.sql/\1/' | sort -V | tail -1))"
fi

# ---------------------------------------------------------------- Python virtualenv
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
STAMP="$STATE/pip.stamp"
WANT=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ] || ! .venv/bin/python -c 'import protocols' 2>/dev/null; then
    say "installing the project into .venv (pip install -e .[dev])"
    .venv/bin/python -m pip install -q --upgrade pip
    # Playwright (dev extra) drives Debian's chromium: never let it download a browser build.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 .venv/bin/python -m pip install -q -e '.[dev]'
    echo "$WANT" > "$STAMP"
else
    say "Python environment: up to date"
fi

# ---------------------------------------------------------------- the map's Leaflet (npm)
# The API serves Leaflet from cloud/web/node_modules (never a CDN): npm ci installs exactly
# the version pinned in cloud/web/package-lock.json.
WEB_STAMP="$STATE/npm.stamp"
WEB_WANT=$(sha256sum cloud/web/package-lock.json | cut -d' ' -f1)
if [ ! -f "$WEB_STAMP" ] || [ "$(cat "$WEB_STAMP")" != "$WEB_WANT" ] || [ ! -f cloud/web/node_modules/leaflet/dist/leaflet-src.esm.js ]; then
    if ! command -v npm >/dev/null 2>&1; then
        say "installing nodejs and npm (for the map's Leaflet)"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
    fi
    say "installing the map's JavaScript packages (npm ci --prefix cloud/web)"
    npm ci --prefix cloud/web --ignore-scripts --no-audit --no-fund >"$STATE/npm.log" 2>&1 || {
        say "npm ci failed (the map needs Leaflet; is the npm registry reachable?); log: $STATE/npm.log"
        exit 1
    }
    echo "$WEB_WANT" > "$WEB_STAMP"
else
    say "map JavaScript packages: up to date"
fi
say "ready"
