"""Installer tools end to end: the real registry API, Mosquitto (TLS) and PostgreSQL.

The commands run as subprocesses, as an installer runs them: ``python -m
edge.installer`` (the same ``register`` that ``vgr edge`` wires in) for
provision, selftest, bundle and flash; ``vgr check-config`` and ``vgr edge
verify-token`` for what the agent would accept. The registry is the real
aiohttp application on a loopback port, writing the session broker's password
and ACL files (put back after each test, as in test_registry.py).

The full-bundle test downloads the agent's wheels with pip from the package
index (six wheels, under 1 MB for x86_64/CPython 3.11, since the agent no
longer needs pydantic, cryptography, PyJWT, shapely or pyproj) and installs
them, offline, into a clean venv with the bundle's own install.sh.
"""

from __future__ import annotations

import asyncio
import functools
import operator
import os
import secrets
import stat
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from aiohttp.test_utils import TestServer

from cloud.localsvc import PrivateMosquitto, free_port
from cloud.registry import store
from cloud.registry.api import MqttEndpoint, RegistrySettings, build_app
from cloud.registry.broker_auth import BrokerFiles, write_atomic
from cloud.registry.ids import with_check_digit
from cloud.registry.issue import Signer
from cloud.storage.migrate import migrate
from protocols.tokens import generate_private_key

pytestmark = pytest.mark.services

EDGE = (sys.executable, "-m", "edge.installer")
VGR = str(Path(sys.executable).with_name("vgr"))
KEY_ENV = "VGR_TEST_INSTALLER_KEY"
VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


def new_imei() -> str:
    return with_check_digit("86" + "".join(secrets.choice("0123456789") for _ in range(12)))


def new_vin() -> str:
    return "".join(secrets.choice(VIN_ALPHABET) for _ in range(17))


# ---------------------------------------------------------------------- NMEA


def sentence(body: str) -> bytes:
    """``$body*XX\\r\\n`` with XX the XOR of the body's bytes."""
    cs = functools.reduce(operator.xor, body.encode("ascii"), 0)
    return f"${body}*{cs:02X}\r\n".encode("ascii")


def nmea_capture(start: datetime, seconds: int, *, fixed: bool) -> bytes:
    """RMC + GGA per second near Shanghai, as a receiver with (or without) a fix sends them."""
    out = b""
    for i in range(seconds):
        t = start + timedelta(seconds=i)
        hms, dmy = t.strftime("%H%M%S.00"), t.strftime("%d%m%y")
        if fixed:
            out += sentence(f"GPRMC,{hms},A,3113.8000,N,12128.2000,E,0.1,0.0,{dmy},,,A")
            out += sentence(f"GPGGA,{hms},3113.8000,N,12128.2000,E,1,09,0.9,12.0,M,8.0,M,,")
        else:
            out += sentence(f"GPRMC,{hms},V,,,,,,,{dmy},,,N")
            out += sentence(f"GPGGA,{hms},,,,,0,00,99.9,,M,,M,,")
    return out


# ---------------------------------------------------------------------- services


@pytest.fixture
def broker_files(mosquitto: PrivateMosquitto) -> Iterator[PrivateMosquitto]:
    saved = mosquitto.password_path.read_text(), mosquitto.acl_path.read_text()
    yield mosquitto
    write_atomic(mosquitto.password_path, saved[0], 0o600)
    write_atomic(mosquitto.acl_path, saved[1], 0o600)
    mosquitto.reload()


@dataclass
class Site:
    """A registry on a loopback port, an installer key, and a workshop directory."""

    url: str
    key: str
    broker: PrivateMosquitto
    work: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VGR_")}
        return env | {KEY_ENV: self.key} | extra


@pytest.fixture
async def site(
    fresh_db: str, broker_files: PrivateMosquitto, tmp_path: Path
) -> AsyncIterator[Site]:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    migrate(fresh_db)
    async with await psycopg.AsyncConnection.connect(fresh_db, autocommit=True) as conn:
        await store.create_tenant(conn, "alpha", "Alpha Auto Finance")
        key = await store.create_installer_key(conn, "alpha", "fitter-1")
    broker = broker_files
    settings = RegistrySettings(
        dsn=fresh_db,
        signer=Signer(generate_private_key(), timedelta(days=30)),
        endpoint=MqttEndpoint(
            host=broker.host,
            port=broker.auth_port,
            tls_port=broker.tls_port,
            ca_pem=broker.ca_path.read_text(),
        ),
        broker=BrokerFiles(broker.password_path, broker.acl_path, (), broker.reload),
        pool_max=2,
    )
    async with TestServer(build_app(settings), host="127.0.0.1") as server:
        yield Site(f"http://127.0.0.1:{server.port}", key, broker, tmp_path)


@dataclass
class Done:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}--- stderr\n{self.err}"


async def run(*cmd: str, env: Mapping[str, str], limit_s: float = 120) -> Done:
    """A command as a subprocess, while this event loop keeps serving the registry."""
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(env)
    )
    out, err = await asyncio.wait_for(proc.communicate(), limit_s)
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


@dataclass
class Device:
    imei: str
    vin: str
    config: Path
    out: Path


async def provision(site: Site, *extra: str, gnss: Path | None = None) -> tuple[Device, Done]:
    imei, vin = new_imei(), new_vin()
    out = site.work / f"etc-{imei}"
    state = site.work / "state"
    state.mkdir(exist_ok=True)
    gnss_args = ["--gnss-source", "file", "--gnss-path", str(gnss)] if gnss else []
    done = await run(
        *EDGE,
        "provision",
        "--api",
        site.url,
        "--key-env",
        KEY_ENV,
        "--imei",
        imei,
        "--kind",
        "wired",
        "--vin",
        vin,
        "--contract",
        f"HT-{imei}",
        "--plate",
        "苏A12345",
        "--address",
        "南京市玄武区",
        "--adcode",
        "320100",
        "--out",
        str(out),
        "--outbox",
        str(state / "outbox.sqlite3"),
        *gnss_args,
        *extra,
        env=site.env(),
    )
    return Device(imei, vin, out / "edge.toml", out), done


def gnss_file(site: Site, *, fixed: bool = True) -> Path:
    path = site.work / ("gnss.nmea" if fixed else "nofix.nmea")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=2)
    path.write_bytes(nmea_capture(start, 5, fixed=fixed))
    return path


# ---------------------------------------------------------------------- provision


async def test_provision_writes_a_config_the_agent_accepts(site: Site) -> None:
    dev, done = await provision(site, gnss=gnss_file(site))
    assert done.code == 0, done
    for step in (
        "registering device",
        "binding to VIN",
        "requesting credentials",
        "verifying token and policy",
        "writing",
    ):
        assert f"{step}" in done.out, done
    assert done.out.count("… ok") == 5, done
    password = (dev.out / "mqtt.password").read_text().strip()
    assert password
    assert password not in done.out + done.err
    assert site.key not in done.out + done.err
    assert sorted(p.name for p in dev.out.iterdir()) == [
        "ca.pem",
        "edge.toml",
        "mqtt.password",
        "platform.pub",
        "policy.jwt",
        "token.jwt",
    ]
    assert stat.S_IMODE((dev.out / "mqtt.password").stat().st_mode) == 0o600

    checked = await run(VGR, "check-config", str(dev.config), env=site.env())
    assert checked.code == 0, checked
    verified = await run(VGR, "edge", "verify-token", "--config", str(dev.config), env=site.env())
    assert verified.code == 0, verified
    assert f"token valid for device {dev.imei} (tenant alpha, VIN {dev.vin})" in verified.out
    text = dev.config.read_text()
    assert f'port = {site.broker.tls_port}\ntls = true\nca_file = "{dev.out / "ca.pem"}"' in text
    assert f'password = "file:{dev.out / "mqtt.password"}"' in text


async def test_provision_errors_name_the_cause_and_write_nothing(site: Site) -> None:
    dev, done = await provision(site, "--kind", "wireless")  # the last --kind wins
    assert done.code == 0, done
    # The same tracker, now said to be wired: the server's code and a hint.
    again = await run(
        *EDGE,
        "provision",
        "--api",
        site.url,
        "--key-env",
        KEY_ENV,
        "--imei",
        dev.imei,
        "--kind",
        "wired",
        "--vin",
        dev.vin,
        "--contract",
        "HT-2",
        "--out",
        str(dev.out),
        env=site.env(),
    )
    assert again.code == 1, again
    assert "registering device" in again.out
    assert "failed" in again.out
    assert "[409 kind_mismatch]" in again.err
    assert "use that one" in again.err

    base = (
        "--api",
        site.url,
        "--imei",
        new_imei(),
        "--kind",
        "wired",
        "--vin",
        new_vin(),
        "--contract",
        "HT-3",
        "--out",
        str(site.work / "never"),
    )
    bad_key = await run(
        *EDGE, "provision", "--key-env", KEY_ENV, *base, env=site.env(**{KEY_ENV: "not-the-key"})
    )
    assert bad_key.code == 1, bad_key
    assert "[401 unauthorized]" in bad_key.err
    assert "not-the-key" not in bad_key.out + bad_key.err

    no_key = await run(
        *EDGE, "provision", "--key-env", "VGR_TEST_NO_SUCH_KEY", *base, env=site.env()
    )
    assert no_key.code == 2
    assert "VGR_TEST_NO_SUCH_KEY is not set" in no_key.err

    typo = list(base)
    typo[typo.index("--imei") + 1] = dev.imei[:-1] + str((int(dev.imei[-1]) + 1) % 10)
    bad_imei = await run(*EDGE, "provision", "--key-env", KEY_ENV, *typo, env=site.env())
    assert bad_imei.code == 2
    assert "--imei: the IMEI's check digit is wrong" in bad_imei.err
    assert bad_imei.out == ""  # nothing was sent

    down = list(base)
    down[1] = f"http://127.0.0.1:{free_port()}"
    offline = await run(*EDGE, "provision", "--key-env", KEY_ENV, *down, env=site.env())
    assert offline.code == 1
    assert "cannot reach" in offline.err
    assert not (site.work / "never").exists()


# ---------------------------------------------------------------------- selftest


async def test_selftest_passes_on_a_good_tracker_and_says_what_to_fix(site: Site) -> None:
    dev, done = await provision(site, gnss=gnss_file(site))
    assert done.code == 0, done
    test = (*EDGE, "selftest", "--config", str(dev.config), "--gnss-timeout", "10")

    good = await run(*test, env=site.env())
    assert good.code == 0, good
    assert "all 6 checks passed" in good.out
    rows = {line.split()[0]: line.split()[1] for line in good.out.splitlines()[2:8]}
    assert rows == dict.fromkeys(("gnss", "broker", "token", "clock", "outbox", "disk"), "PASS")
    assert f"credentials of {dev.imei} accepted" in good.out

    def failing(done: Done) -> dict[str, str]:
        """Each failed check and its remedy line."""
        lines = done.out.splitlines()
        out = {}
        for i, line in enumerate(lines):
            parts = line.split(maxsplit=2)
            if len(parts) == 3 and parts[1] == "FAIL":
                remedy = lines[i + 1].strip() if i + 1 < len(lines) else ""
                out[parts[0]] = parts[2] + " | " + remedy
        return out

    wrong = await run(*test, env=site.env(VGR_EDGE__UPLINK__PASSWORD="env:WRONG", WRONG="nope"))
    assert wrong.code == 1, wrong
    assert list(failing(wrong)) == ["broker"], wrong
    assert f"refused {dev.imei}" in failing(wrong)["broker"]
    assert "-> the broker does not accept this device's password" in failing(wrong)["broker"]

    down = await run(*test, env=site.env(VGR_EDGE__UPLINK__PORT=str(free_port())))
    assert down.code == 1, down
    assert list(failing(down)) == ["broker"], down
    assert "unreachable: connection refused" in failing(down)["broker"]
    assert "-> check [uplink] host and port" in failing(down)["broker"]

    plain = await run(*test, env=site.env(VGR_EDGE__UPLINK__PORT=str(site.broker.auth_port)))
    assert plain.code == 1, plain
    assert "TLS failed" in failing(plain)["broker"], plain

    nofix = await run(*test, env=site.env(VGR_EDGE__GNSS__PATH=str(gnss_file(site, fixed=False))))
    assert nofix.code == 1, nofix
    assert list(failing(nofix)) == ["gnss"], nofix
    assert "none with a fix" in failing(nofix)["gnss"]
    assert "-> put the tracker where it sees the open sky" in failing(nofix)["gnss"]
    assert "no GNSS time to compare" in nofix.out

    broken = await run(*test, env=site.env(VGR_EDGE__UPLINK__PORT="not-a-port"))
    assert broken.code == 2
    assert "uplink.port" in broken.err


# ---------------------------------------------------------------------- bundle and flash


async def test_bundle_flash_verify_and_catch_a_corrupted_file(site: Site) -> None:
    dev, done = await provision(site)
    assert done.code == 0, done
    bundle = site.work / "bundle.tar.gz"
    built = await run(
        *EDGE,
        "bundle",
        "--config",
        str(dev.config),
        "--out",
        str(bundle),
        "--no-wheels",
        env=site.env(),
    )
    assert built.code == 0, built
    assert "no wheels" in built.out

    root = site.work / "tracker-root"
    root.mkdir()
    refused = await run(*EDGE, "flash", "--bundle", str(bundle), "--target", "/", env=site.env())
    assert refused.code == 2
    assert "--i-mean-root" in refused.err
    flashed = await run(
        *EDGE, "flash", "--bundle", str(bundle), "--target", str(root), env=site.env()
    )
    assert flashed.code == 0, flashed
    assert "opt/vgr/vgr-agent.pyz" in flashed.out
    assert "verifying" in flashed.out
    assert "ok (" in flashed.out.splitlines()[-1]
    etc = root / "etc/vgr"
    assert sorted(p.name for p in etc.iterdir()) == [
        "ca.pem",
        "edge.toml",
        "mqtt.password",
        "platform.pub",
    ]
    assert stat.S_IMODE((etc / "mqtt.password").stat().st_mode) == 0o600
    assert sorted(p.name for p in (root / "var/lib/vgr/trust").iterdir()) == [
        "policy.jwt",
        "token.jwt",
    ]
    unit = (root / "etc/systemd/system/vgr-agent.service").read_text()
    assert "Restart=always" in unit
    assert "User=vgr" in unit
    assert "ExecStart=/opt/vgr/venv/bin/python /opt/vgr/vgr-agent.pyz run --config " in unit
    wants = root / "etc/systemd/system/multi-user.target.wants/vgr-agent.service"
    assert str(wants.readlink()) == "/etc/systemd/system/vgr-agent.service"
    # The bundled config points at the tracker's paths and is still a valid config.
    toml = (etc / "edge.toml").read_text()
    assert 'token_file = "/var/lib/vgr/trust/token.jwt"' in toml
    assert 'password = "file:/etc/vgr/mqtt.password"' in toml
    assert (await run(VGR, "check-config", str(etc / "edge.toml"), env=site.env())).code == 0

    verify = (*EDGE, "flash", "--bundle", str(bundle), "--target", str(root), "--verify-only")
    assert (await run(*verify, env=site.env())).code == 0
    pyz = root / "opt/vgr/vgr-agent.pyz"
    data = bytearray(pyz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pyz.write_bytes(bytes(data))
    bad = await run(*verify, env=site.env())
    assert bad.code == 1, bad
    assert "mismatch: opt/vgr/vgr-agent.pyz: changed" in bad.err

    # The bundle's own install.sh does the same into a root given by VGR_ROOT.
    unpacked = site.work / "unpacked"
    with tarfile.open(bundle) as tar:
        tar.extractall(unpacked, filter="data")
    other_root = site.work / "other-root"
    other_root.mkdir()
    script = unpacked / "vgr-bundle/install.sh"
    installed = await run("sh", str(script), env=site.env(VGR_ROOT=str(other_root)))
    assert installed.code == 0, installed
    assert (other_root / "etc/vgr/edge.toml").read_bytes() == (etc / "edge.toml").read_bytes()
    assert (
        other_root / "etc/systemd/system/multi-user.target.wants/vgr-agent.service"
    ).is_symlink()


async def test_the_full_bundle_runs_in_a_clean_venv(site: Site) -> None:
    """Wheels from the index, a venv made by the bundle's install.sh, the zipapp self-tests."""
    dev, done = await provision(site, gnss=gnss_file(site))
    assert done.code == 0, done
    bundle = site.work / "full.tar.gz"
    built = await run(
        *EDGE,
        "bundle",
        "--config",
        str(dev.config),
        "--out",
        str(bundle),
        env=site.env(),
        limit_s=300,
    )
    assert built.code == 0, built
    size = bundle.stat().st_size
    assert 2**19 < size < 20 * 2**20, size  # wheels included, nothing absurd
    root = site.work / "root"
    root.mkdir()
    flashed = await run(
        *EDGE, "flash", "--bundle", str(bundle), "--target", str(root), env=site.env()
    )
    assert flashed.code == 0, flashed
    app = root / "opt/vgr"
    wheels = {w.name.split("-")[0].lower() for w in (app / "wheels").glob("*.whl")}
    assert wheels >= {"aiomqtt", "paho_mqtt", "pynmea2", "msgspec", "pyserial_asyncio"}, wheels
    assert not wheels & {"pydantic", "cryptography", "pyjwt", "shapely", "pyproj", "numpy"}

    made = await run(
        "sh",
        str(app / "install.sh"),
        "venv",
        env=site.env(VGR_APP=str(app), VGR_PYTHON=sys.executable),
        limit_s=300,
    )
    assert made.code == 0, made
    python = str(app / "venv/bin/python")
    cfg = await run(
        python, "-c", "import sys; print(sys.prefix != sys.base_prefix)", env=site.env()
    )
    assert cfg.out.strip() == "True"
    isolated = await run(python, "-c", "import vgr", env=site.env())
    assert isolated.code != 0  # the development checkout is not visible in there

    helped = await run(python, str(app / "vgr-agent.pyz"), "--help", env=site.env())
    assert helped.code == 0, helped
    for command in ("run", "verify-token", "selftest", "provision", "check-deps"):
        assert command in helped.out
    deps = await run(python, str(app / "vgr-agent.pyz"), "check-deps", env=site.env())
    assert deps.code == 0, deps
    tested = await run(
        python,
        str(app / "vgr-agent.pyz"),
        "selftest",
        "--config",
        str(dev.config),
        "--gnss-timeout",
        "10",
        env=site.env(),
    )
    assert tested.code == 0, tested
    assert "all 6 checks passed" in tested.out
