"""The JavaScript that shows a course page's widgets, shipped inside the site.

nbconvert's pages load require.js and the widget renderer (``@jupyter-widgets/html-manager``)
from public CDNs, so a site opened from a disk, on a train or behind a school's firewall shows
its widgets blank. The course build puts both into the site's ``static/`` folder and points the
pages there. They come from the npm registry, pinned to one version each and checked against
the registry's SHA-512, once per machine: later builds take them from smtplab's cache
(``~/.cache/smtplab``, or ``$SMTPLAB_CACHE``), so only the first build needs the network.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from smtplab.transport.certs import cache_directory

#: Where the site keeps them; nbconvert's pages are told these paths.
FOLDER = "static"
REQUIRE_JS = f"{FOLDER}/require.js"
WIDGET_RENDERER = f"{FOLDER}/embed-amd.js"
#: Set before the renderer loads: where it finds its icon fonts (it would look beside a CDN's
#: origin, which a file:// page does not have).
ASSETS_PATH_SCRIPT = f"<script>window.__jupyter_widgets_assets_path__ = '{FOLDER}/';</script>"


@dataclass(frozen=True)
class NpmPackage:
    name: str
    version: str
    integrity: str  # the registry's dist.integrity: "sha512-" and the base64 digest
    license: str
    members: tuple[str, ...]  # what the site needs of the tarball: files, or folders ending "/"

    @property
    def tarball(self) -> str:
        return f"https://registry.npmjs.org/{self.name}/-/{self.name.split('/')[-1]}-{self.version}.tgz"

    def wanted(self, member: str) -> bool:
        return any(member == m or (m.endswith("/") and member.startswith(m)) for m in self.members)


PACKAGES = (
    NpmPackage(
        "requirejs",
        "2.3.8",
        "sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw==",
        "MIT",
        ("package/require.js",),
    ),
    NpmPackage(
        "@jupyter-widgets/html-manager",
        "1.0.15",
        "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        "BSD-3-Clause",
        ("package/dist/",),  # embed-amd.js and the icon fonts it loads
    ),
)
_SKIPPED = (".map", "/embed.js", "/libembed-amd.js")  # not used by nbconvert's pages


def copy_widget_assets(output: Path, cache: Path | None = None) -> None:
    """Put require.js and the widget renderer (with its fonts) into ``output/static``."""
    target = output / FOLDER
    target.mkdir(parents=True, exist_ok=True)
    notes = []
    for package in PACKAGES:
        for file in _cached(package, cache or cache_directory()).iterdir():
            shutil.copyfile(file, target / file.name)
        notes.append(f"{package.name} {package.version} ({package.license}): {package.tarball}")
    (target / "THIRD-PARTY.txt").write_text(
        "The widget renderer of these pages, unchanged from the npm registry:\n"
        + "\n".join(notes)
        + "\n",
        encoding="utf-8",
    )


def _cached(package: NpmPackage, cache: Path) -> Path:
    """The folder of the package's files in the cache, downloaded and checked when missing."""
    folder = cache / "site-assets" / f"{package.name.replace('/', '--')}-{package.version}"
    if folder.is_dir():
        return folder
    try:
        with urllib.request.urlopen(package.tarball, timeout=120) as response:
            data = response.read()
    except OSError as error:
        raise RuntimeError(
            f"the course site ships the widget renderer, fetched once from the npm registry: "
            f"{package.tarball} could not be read ({error}). Build once where the registry is "
            f"reachable (it is kept in {cache}), or copy that folder from such a machine"
        ) from None
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != package.integrity:
        raise RuntimeError(f"{package.tarball}: its SHA-512 is not the one pinned; not used")
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            if (
                member.isfile()
                and package.wanted(member.name)
                and not member.name.endswith(_SKIPPED)
            ):
                source = archive.extractfile(member)
                assert source is not None  # a regular file
                (partial / Path(member.name).name).write_bytes(source.read())
    partial.rename(folder)  # whole or not at all
    return folder
