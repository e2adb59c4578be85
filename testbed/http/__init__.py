"""Fake HTTP/1.1 service for the testbed and for proxy tests."""

from .routes import Reply, Request, Route, pattern
from .service import FakeHttpService

__all__ = ["FakeHttpService", "Reply", "Request", "Route", "pattern"]
