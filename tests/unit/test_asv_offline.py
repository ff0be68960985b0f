"""asv's published pages pointed at local copies of their CDN scripts (studies/asv_offline.py; no npm)."""

from __future__ import annotations

from studies import asv_offline

JQUERY = "https://code.jquery.com/jquery-3.3.1.min.js"
CSS = "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css"
PAGE = f"""<html><head>
<script src="{JQUERY}" integrity="sha384-abc" crossorigin="anonymous"></script>
<link rel="stylesheet" href="{CSS}" integrity="sha384-def">
<script src="https://example.invalid/other.js"></script>
<script src="asv.js"></script>
</head><body><a href="https://github.com/airspeed-velocity/asv/">asv</a></body></html>"""


def test_vendored_tags_point_at_local_copies_without_integrity():
    placed = []

    def place(url: str) -> str:
        placed.append(url)
        return f"vendor/{len(placed)}.js"

    text, unknown = asv_offline.rewrite(PAGE, place)
    assert placed == [JQUERY, CSS]
    assert '<script src="vendor/1.js"></script>' in text
    assert '<link rel="stylesheet" href="vendor/2.js">' in text
    assert unknown == {"https://example.invalid/other.js"}  # reported, left as it was
    assert '<script src="https://example.invalid/other.js">' in text and '<script src="asv.js">' in text
    assert '<a href="https://github.com/airspeed-velocity/asv/">' in text  # a link is not a resource
