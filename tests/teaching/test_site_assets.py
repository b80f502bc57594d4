"""The widget renderer shipped with the course site: fetched once, checked, cached."""

from __future__ import annotations

import io
import urllib.request
from pathlib import Path

import pytest

from smtplab.teaching import site_assets


def test_assets_come_from_the_cache_once_fetched(tmp_path: Path) -> None:
    site_assets.copy_widget_assets(tmp_path / "site", cache=tmp_path / "cache")
    static = tmp_path / "site" / "static"
    assert (static / "require.js").stat().st_size > 10_000
    assert (static / "embed-amd.js").stat().st_size > 1_000_000
    assert "html-manager 1.0.15 (BSD-3-Clause)" in (static / "THIRD-PARTY.txt").read_text()
    assert not list(static.glob("*.map"))

    # Offline now: the cache serves the next build.
    def no_network(*arguments, **keywords):
        raise OSError("network is unreachable")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(urllib.request, "urlopen", no_network)
        site_assets.copy_widget_assets(tmp_path / "again", cache=tmp_path / "cache")
    assert (tmp_path / "again" / "static" / "embed-amd.js").exists()


def test_without_the_registry_or_with_other_bytes_the_build_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*arguments, **keywords):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(RuntimeError, match=r"could not be read \(network is unreachable\)"):
        site_assets.copy_widget_assets(tmp_path / "site", cache=tmp_path / "empty")

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: io.BytesIO(b"not a tarball"))
    with pytest.raises(RuntimeError, match="SHA-512 is not the one pinned"):
        site_assets.copy_widget_assets(tmp_path / "site", cache=tmp_path / "empty")
    assert not any((tmp_path / "empty").rglob("*.js"))  # nothing unchecked was kept
