"""Redaction: what must never leave the process in clear, and the scrubbers.

Applied at the observe layer even where a codec already hides a secret,
because the tail, the access log, /config and the logs each read different
fields; one list of rules here keeps them consistent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from ..config import Config
from ..config import redacted as _config_redacted

REDACTED = "<redacted>"

#: Header names whose values are credentials (lower case, as HTTP/2 sends them).
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
_SECRET_HEADERS_B = frozenset(h.encode() for h in SECRET_HEADERS)

# Credentials in free text (log lines): "authorization: Basic xyz", "Bearer xyz",
# "password=xyz", "token: xyz"...
_TEXT_PATTERNS = (
    re.compile(
        r"(?i)\b((?:proxy-)?authorization|cookie|set-cookie|x-api-key)(['\"]?\s*[:=,]\s*b?['\"]?)"
        r"([^'\"\r\n]+)"
    ),
    re.compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/=-]+)"),
    re.compile(
        r"(?i)\b(password|passwd|token|secret|sasl_password)(['\"]?\s*[:=]\s*['\"]?)([^\s'\",}]+)"
    ),
)


def header_pairs(headers: Iterable[tuple[Any, Any]]) -> list[list[str]]:
    """Headers as JSON pairs with credential values replaced.

    Accepts HTTP/2 (str, str) and HTTP/1 (bytes, bytes) pairs alike.
    """
    out: list[list[str]] = []
    for name, value in headers:
        if isinstance(name, bytes):
            secret = name.lower() in _SECRET_HEADERS_B
            name = name.decode("latin-1")
        else:
            secret = name.lower() in SECRET_HEADERS
        if secret:
            out.append([name, REDACTED])
        elif isinstance(value, bytes):
            out.append([name, value.decode("latin-1")])
        else:
            out.append([name, str(value)])
    return out


def config(cfg: Config) -> dict[str, Any]:
    """The effective config for /config: secret fields and secret headers replaced.

    Three nets: fields marked ``json_schema_extra={"secret": True}`` on any
    model, keys named like secrets (config.SECRET_KEYS), and values under
    credential header names (a fault matching on `authorization`).
    """
    data = _config_redacted(cfg)
    _marked(cfg, data)
    return _scrub_headers(data)


def _marked(model: BaseModel, data: Any) -> None:
    if not isinstance(data, dict):
        return
    for name, info in type(model).model_fields.items():
        key = info.alias or name
        if key not in data:
            continue
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("secret"):
            if data[key] is not None:
                data[key] = REDACTED
            continue
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            _marked(value, data[key])
        elif isinstance(value, list):
            for item, out in zip(value, data[key] or [], strict=False):
                if isinstance(item, BaseModel):
                    _marked(item, out)
        elif isinstance(value, dict):
            for k, item in value.items():
                if isinstance(item, BaseModel) and isinstance(data[key], dict):
                    _marked(item, data[key].get(str(k)))


def _scrub_headers(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {
            k: (
                REDACTED
                if str(k).lower() in SECRET_HEADERS and v is not None
                else _scrub_headers(v)
            )
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_scrub_headers(v) for v in obj]
    if isinstance(obj, str):
        return scrub_text(obj)
    return obj


def scrub_text(text: str, literals: Iterable[str] = ()) -> str:
    """Credentials found in free text, replaced; `literals` are known secret values."""
    for value in literals:
        if value and value in text:
            text = text.replace(value, REDACTED)
    for pattern in _TEXT_PATTERNS:
        if pattern.search(text):
            text = pattern.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    return text


class LogRedactor:
    """A LogRecord factory that scrubs every record's final message.

    A record factory rather than a Filter: filters on a logger do not run for
    records of its child loggers, and handlers come and go (pytest, the CLI),
    while the factory sees every record the process makes.
    """

    def __init__(self, literals: Iterable[str] = ()) -> None:
        self.literals = [v for v in literals if v]
        self._previous = logging.getLogRecordFactory()

    def install(self) -> None:
        current = logging.getLogRecordFactory()
        if isinstance(getattr(current, "__self__", None), LogRedactor):
            # Another App in this process installed one: share its factory and add ours.
            owner: LogRedactor = current.__self__  # type: ignore[attr-defined]
            owner.literals.extend(v for v in self.literals if v not in owner.literals)
            return
        self._previous = current
        logging.setLogRecordFactory(self.make)

    def make(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self._previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return record  # a malformed call; logging reports it itself
        clean = scrub_text(message, self.literals)
        if clean != message or record.args:
            record.msg = clean
            record.args = None
        return record


def config_secrets(cfg: Config) -> list[str]:
    """Literal secret values in the config, so logs can never print them."""
    out: list[str] = []
    if cfg.admin.token:
        out.append(cfg.admin.token)
    return out
