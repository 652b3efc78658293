"""The web files' handler: what it serves, what it refuses, the page's CSP."""

from __future__ import annotations

import json
import re

import pytest

from cloud.api.static import WEB_ROOT, content_security_policy, resolve, tile_origin
from cloud.config import ApiSettings


def test_serves_the_pages_files_and_leaflet_from_node_modules() -> None:
    assert resolve("js/app.js") == (WEB_ROOT / "js" / "app.js").resolve()
    assert resolve("i18n/zh-CN.json") is not None
    assert resolve("css/map.css") is not None
    leaflet = resolve("vendor/leaflet/leaflet-src.esm.js")
    assert leaflet is not None, "run: npm ci --prefix cloud/web"
    assert leaflet.parent.name == "dist"


@pytest.mark.parametrize(
    "path",
    [
        "../config.py",
        "js/../../config.py",
        "..",
        ".",
        "",
        "js/",
        "/etc/passwd",
        "js//app.js",
        "node_modules/leaflet/package.json",
        "package.json",
        "package-lock.json",
        ".gitignore",
        "vendor/leaflet/../../../../api/static.py",
        "vendor/other/x.js",
        "vendor/leaflet",
        "js/app.js\x00.png",
        "js\\..\\..\\config.py",
        "js/nothing.js",
        "js",
    ],
)
def test_refuses_anything_else(path: str) -> None:
    assert resolve(path) is None


def test_csp_allows_this_origin_and_the_tile_server_only() -> None:
    csp = content_security_policy(ApiSettings())
    assert "default-src 'none'" in csp
    assert "script-src 'self';" in csp
    assert "img-src 'self';" in csp
    assert "unsafe" not in csp
    assert "http" not in csp
    tiles = ApiSettings(tile_url="https://{s}.tile.example.org/{z}/{x}/{y}.png")
    assert "img-src 'self' https://*.tile.example.org;" in content_security_policy(tiles)
    assert tile_origin("http://10.1.2.3:8088/tiles/{z}/{x}/{y}.png") == "http://10.1.2.3:8088"
    assert tile_origin("") is None


def test_tile_url_must_be_http() -> None:
    for bad in ("javascript:alert(1)", "https://x.example/' ; script-src *", "ftp://x/{z}"):
        with pytest.raises(ValueError, match="tile_url"):
            ApiSettings(tile_url=bad)


def test_both_languages_have_every_key_the_page_names() -> None:
    en = json.loads((WEB_ROOT / "i18n" / "en.json").read_text(encoding="utf-8"))
    zh = json.loads((WEB_ROOT / "i18n" / "zh-CN.json").read_text(encoding="utf-8"))
    assert set(en) == set(zh)
    page = (WEB_ROOT / "index.html").read_text(encoding="utf-8")
    named = set(re.findall(r'data-i18n(?:-placeholder|-title)?="([^"]+)"', page))
    assert named
    assert named <= set(en)
    scripts = "".join(p.read_text(encoding="utf-8") for p in (WEB_ROOT / "js").glob("*.js"))
    literal = set(re.findall(r'\bt\("([a-z0-9_.-]+)"', scripts))
    assert literal <= set(en), literal - set(en)
    assert all(value.strip() for value in [*en.values(), *zh.values()])
