"""Make the site of ``asv publish`` open without a network: its pages load jQuery, flot, bootstrap and three
small plugins from public CDNs; this copies the same versions, packed from the npm registry with
``npm pack``, into ``<html_dir>/vendor/`` and points the pages at them.

    asv publish && python -m studies.asv_offline            # then: asv preview (or any static server)

The packages are fetched once into ``.asv/js`` (git-ignored, like all of ``.asv/``); a page whose CDN
address is not in the table below is reported, never left silently half-offline.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

#: CDN address in asv's pages → (npm package@version, file inside the package)
VENDORED = {
    "https://code.jquery.com/jquery-3.3.1.min.js": ("jquery@3.3.1", "dist/jquery.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js": ("flot@0.8.3", "jquery.flot.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js": (
        "flot@0.8.3",
        "jquery.flot.time.js",
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js": (
        "flot@0.8.3",
        "jquery.flot.selection.js",
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js": (
        "flot@0.8.3",
        "jquery.flot.categories.js",
    ),
    "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js": (
        "flot-orderbars@1.0.0",
        "js/jquery.flot.orderBars.js",
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js": (
        "stupid-table-plugin@1.1.3",  # 1.0.1 is not on npm; 1.1.3 keeps its one-call API
        "stupidtable.min.js",
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js": (
        "blueimp-md5@2.19.0",
        "js/md5.min.js",
    ),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js": (
        "bootstrap@3.1.1",
        "dist/js/bootstrap.min.js",
    ),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css": (
        "bootstrap@3.1.1",
        "dist/css/bootstrap.min.css",
    ),
}
#: a script or stylesheet tag, and the remote address it loads
TAG = re.compile(r"<(?:script|link)\b[^>]*>")
REMOTE = re.compile(r'(?:src|href)="(https?://[^"]+)"')
#: the CDN files' subresource-integrity hashes do not fit npm's copies (flot ships unminified): dropped
INTEGRITY = re.compile(r'\s+(?:integrity|crossorigin)="[^"]*"')


def fetch(cache: Path) -> dict[str, Path]:
    """``npm pack`` each package once into ``cache``; package@version → its unpacked folder."""
    cache.mkdir(parents=True, exist_ok=True)
    out = {}
    for package in sorted({pkg for pkg, _ in VENDORED.values()}):
        folder = cache / package
        if not folder.is_dir():
            packed = subprocess.run(
                ["npm", "pack", package, "--silent"], cwd=cache, capture_output=True, text=True, check=True
            ).stdout.split()[-1]
            with tarfile.open(cache / packed) as archive:
                archive.extractall(folder, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        out[package] = folder / "package"
    return out


def rewrite(text: str, place: Callable[[str], str]) -> tuple[str, set[str]]:
    """The page with each script and stylesheet tag that loads a ``VENDORED`` address pointed at
    ``place(address)`` (its integrity attributes dropped), and the remote addresses left as they were."""
    unknown: set[str] = set()

    def local(tag: re.Match) -> str:
        found = REMOTE.search(tag.group(0))
        if found is None:
            return tag.group(0)
        url = found.group(1)
        if url not in VENDORED:
            unknown.add(url)
            return tag.group(0)
        return INTEGRITY.sub("", tag.group(0).replace(url, place(url)))

    return TAG.sub(local, text), unknown


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--html-dir", default=".asv/html")
    ap.add_argument("--cache", default=".asv/js")
    args = ap.parse_args(argv)
    html_dir = Path(args.html_dir)
    pages = sorted(html_dir.glob("*.html"))
    if not pages:
        print(f"asv_offline: no pages in {html_dir}: run `asv publish` first")
        return 2
    packages = fetch(Path(args.cache))
    vendor = html_dir / "vendor"
    vendor.mkdir(exist_ok=True)
    unknown = set()

    def place(url: str) -> str:
        package, inner = VENDORED[url]
        name = f"{package.split('@')[0]}-{Path(inner).name}"
        shutil.copy(packages[package] / inner, vendor / name)
        return f"vendor/{name}"

    for page in pages:
        text, missing = rewrite(page.read_text(encoding="utf-8"), place)
        page.write_text(text, encoding="utf-8")
        unknown |= missing
    for url in sorted(unknown):
        print(f"asv_offline: not vendored (still loaded from the network): {url}")
    print(f"asv_offline: {len(pages)} page(s) in {html_dir} load their scripts and styles from {vendor}")
    return 1 if unknown else 0


if __name__ == "__main__":
    raise SystemExit(main())
