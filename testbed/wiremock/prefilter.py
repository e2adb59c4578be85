"""A cheap "cannot match" test run before a stub's full match.

`RequestPattern.match` computes WireMock's distance (Levenshtein over the URL
and every matcher) for each stub it tries, because near misses need it; a
matched request needs only exactness. Most stubs of a real mapping set differ
from a request in method or exact URL, which two string compares show, so
`handle` skips those stubs' distances (with the 29 fixture stubs a request
took 2 ms, mostly edit distances of URLs that were never going to match).
Near misses are still computed in full, from the patterns themselves.
"""

from __future__ import annotations

from .request_pattern import RequestPattern, RequestView


def cannot_match(pattern: RequestPattern, view: RequestView) -> bool:
    """True only when `pattern` surely does not match `view` (False: try it)."""
    if pattern.method != "ANY" and pattern.method != view.method.upper():
        return True
    url = pattern.url
    if url.key in ("url", "urlPath"):
        target = view.url if url.key == "url" else view.path
        return target != url.value
    return False
