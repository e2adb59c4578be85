"""HTTP fakes in WireMock's stub-mapping format: the engine (matching, templating, journal).

`WireMockEngine` is pure Python with no sockets: the HTTP server and the
`/__admin/` routes adapt it to the wire.
"""

from .engine import HttpIn, HttpOut, WireMockEngine
from .errors import MappingError

__all__ = ["HttpIn", "HttpOut", "MappingError", "WireMockEngine"]
