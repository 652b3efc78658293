"""Output sinks, pacing and the ``vgr sim nmea`` command."""

from __future__ import annotations

import argparse
import os
import select
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pynmea2
import pytest

from firmware_sim import sim_cli
from firmware_sim.outputs import (
    FileSink,
    Pacer,
    PtySink,
    TcpClientSink,
    TcpServerSink,
    open_sink,
)
from protocols.hwio import Power, decode_signal

LINE = b"$GPVTG,,T,,M,,N,,K,N*2C\r\n"


def test_file_sink_appends(tmp_path: Path) -> None:
    path = tmp_path / "out.nmea"
    sink = open_sink(f"file:{path}")
    assert isinstance(sink, FileSink)
    sink.write(LINE)
    sink.write(LINE)
    sink.close()
    assert path.read_bytes() == LINE * 2


def test_pty_sink_reads_like_a_serial_port() -> None:
    sink = open_sink("pty")
    assert isinstance(sink, PtySink)
    assert sink.description.startswith("/dev/")
    fd = os.open(sink.path, os.O_RDONLY | os.O_NOCTTY)
    try:
        sink.write(LINE)
        ready, _, _ = select.select([fd], [], [], 2.0)
        assert ready
        assert os.read(fd, 1024) == LINE  # raw mode: CR LF untouched
    finally:
        os.close(fd)
        sink.close()


def test_pty_sink_drops_when_nobody_reads() -> None:
    sink = PtySink()
    try:
        for _ in range(2000):
            sink.write(LINE * 10)
        assert sink.dropped > 0
    finally:
        sink.close()


def test_tcp_server_sink_streams_to_clients() -> None:
    sink = open_sink("tcp:127.0.0.1:0")
    assert isinstance(sink, TcpServerSink)
    try:
        sink.write(LINE)  # nobody connected yet: dropped
        assert sink.dropped == len(LINE)
        with socket.create_connection(("127.0.0.1", sink.port), timeout=2.0) as client:
            deadline = time.monotonic() + 2.0
            while sink.clients == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            sink.write(LINE)
            assert client.recv(1024) == LINE
    finally:
        sink.close()


def test_tcp_client_sink_connects_to_a_listener() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        sink = open_sink(f"connect:127.0.0.1:{port}")
        assert isinstance(sink, TcpClientSink)
        sink.write(LINE)
        conn, _ = server.accept()
        with conn:
            conn.settimeout(2.0)
            assert conn.recv(1024) == LINE
        sink.close()


@pytest.mark.parametrize("spec", ["", "serial", "tcp:", "tcp:x", "file:", "connect:80"])
def test_bad_sink_specs_are_explained(spec: str) -> None:
    with pytest.raises(ValueError, match="bad sink"):
        open_sink(spec)


def test_pacer_holds_simulated_time_to_wall_time() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(d: float) -> None:
        slept.append(d)
        now[0] += d

    t0 = datetime(2025, 3, 3, tzinfo=UTC)
    pacer = Pacer(10.0, t0, clock=lambda: now[0], sleep=sleep)
    pacer.wait_until(t0 + timedelta(seconds=20))
    assert slept == [pytest.approx(2.0)]
    fast = Pacer(0.0, t0, clock=lambda: now[0], sleep=sleep)
    fast.wait_until(t0 + timedelta(days=1))
    assert len(slept) == 1


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    sim_cli.register(parser.add_subparsers())
    args = parser.parse_args(["nmea", *argv])
    result: int = args.func(args)
    return result


def test_cli_streams_nmea_and_io_to_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, io = tmp_path / "gnss.nmea", tmp_path / "hw.jsonl"
    code = run_cli(
        "--scenario", "unplugged", "--vehicle", "GZ-UNPLUG", "--out", f"file:{out}",
        "--io", f"file:{io}", "--speed", "0", "--from", "1d23h9m", "--for", "3m",
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr()
    assert f"nmea: {out}" in printed.out
    assert f"io: {io}" in printed.out
    assert "ticks=180" in printed.err
    lines = out.read_bytes().splitlines()
    assert len(lines) > 180 * 5
    for raw in lines:
        pynmea2.parse(raw.decode(), check=True)
    signals = [decode_signal(x) for x in io.read_bytes().splitlines()]
    assert any(isinstance(s, Power) and s.state == "lost" for s in signals)


def test_cli_reports_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("--scenario", "nope", "--vehicle", "x", "--speed", "0") == 2
    assert run_cli("--scenario", "commuter", "--vehicle", "x", "--speed", "0") == 2
    assert "SH-COMMUTER" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_cli("--scenario", "commuter", "--vehicle", "x", "--for", "soon")
