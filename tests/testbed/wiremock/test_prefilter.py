"""The prefilter never skips a stub that would have matched.

`cannot_match` is an optimisation in front of `RequestPattern.match`; if it
ever said "cannot" for a pattern that matches, a stub would silently stop
answering, so it is checked against the full match on generated patterns.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from testbed.wiremock.prefilter import cannot_match
from testbed.wiremock.request_pattern import RequestPattern, RequestView

METHODS = st.sampled_from(["GET", "get", "POST", "ANY", "DELETE"])
PATHS = st.sampled_from(["/a", "/a/b", "/A", "/a/", "", "/b"])
QUERIES = st.sampled_from(["", "?x=1", "?x=2&y=", "?"])


@given(
    key=st.sampled_from(["url", "urlPath", "urlPattern", "urlPathPattern", None]),
    method=METHODS,
    want_path=PATHS,
    want_query=QUERIES,
    got_method=METHODS.filter(lambda m: m != "ANY"),
    got_path=PATHS,
    got_query=QUERIES,
)
def test_cannot_match_only_when_the_full_match_fails(
    key: str | None,
    method: str,
    want_path: str,
    want_query: str,
    got_method: str,
    got_path: str,
    got_query: str,
) -> None:
    spec: dict[str, str] = {"method": method}
    if key is not None:
        spec[key] = want_path + want_query if key in ("url", "urlPattern") else want_path
    pattern = RequestPattern.parse(spec)
    view = RequestView(got_method, (got_path or "/") + got_query, [], b"")
    if cannot_match(pattern, view):
        assert not pattern.match(view).exact
