"""Fault specifications: what to match, what to do, and when.

One model for the config file, the admin API and the Python API, so the
three ways of controlling faults cannot drift apart.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..units import Duration
from .actions import (
    ACTIONS,
    GENERIC_MATCH,
    MATCH_KEYS,
    TOXIC_ATTRIBUTES,
    ToxicType,
    check_action,
    check_match,
)

__all__ = ["FaultSpec", "Schedule", "Toxic"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Schedule(_Model):
    """Deterministic gates, all of which must pass (then `probability` is drawn).

    Counting is over the fault's *matches*: `first: 3` injects into the first
    three matching messages, `every: 5` into every fifth, `after: 10` only
    from the eleventh on. `between` is seconds since the fault was added.
    `max_active` caps injections in flight at once (delays, holds).
    """

    first: int | None = Field(default=None, ge=0)
    every: int | None = Field(default=None, ge=1)
    after: int | None = Field(default=None, ge=0)
    between: tuple[Duration, Duration] | None = None
    max_active: int | None = Field(default=None, ge=1)
    #: Stop after this many injections in total.
    limit: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _window(self) -> Schedule:
        if self.between is not None and self.between[0] > self.between[1]:
            raise ValueError("between: start must not be after end")
        return self


class Toxic(_Model):
    """A Toxiproxy stream toxic: same names, attributes and semantics."""

    type: ToxicType
    stream: Literal["upstream", "downstream"] = "downstream"
    toxicity: float = Field(default=1.0, ge=0.0, le=1.0)
    attributes: dict[str, float | int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _attrs(self) -> Toxic:
        allowed = set(TOXIC_ATTRIBUTES[self.type])
        unknown = set(self.attributes) - allowed
        if unknown:
            raise ValueError(
                f"{self.type} toxic has no attribute(s) {', '.join(sorted(unknown))} "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
        for key, value in self.attributes.items():
            if value < 0:
                raise ValueError(f"attribute {key} must not be negative")
        return self


class FaultSpec(_Model):
    name: str
    match: dict[str, Any] = Field(default_factory=dict)
    action: dict[str, Any] | None = None
    toxic: Toxic | None = None
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    schedule: Schedule | None = None
    enabled: bool = True
    #: connection protocols an action without `match.protocol` can act on (None: any)
    _protocols: frozenset[str] | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or len(v) > 200:
            raise ValueError("name must be 1 to 200 characters")
        return v

    @field_validator("match")
    @classmethod
    def _match(cls, match: dict[str, Any]) -> dict[str, Any]:
        proto = match.get("protocol")
        if proto is not None and proto not in MATCH_KEYS:
            raise ValueError(
                f"match.protocol {proto!r} is not one of {', '.join(sorted(MATCH_KEYS))}"
            )
        allowed = GENERIC_MATCH | (
            MATCH_KEYS[proto] if proto else frozenset().union(*MATCH_KEYS.values())
        )
        unknown = set(match) - allowed
        if unknown:
            raise ValueError(
                f"match key(s) {', '.join(sorted(unknown))} not understood"
                + (f" for protocol {proto}" if proto else "")
                + f" (allowed: {', '.join(sorted(allowed))})"
            )
        check_match(match)
        return match

    @field_validator("action")
    @classmethod
    def _action(cls, action: dict[str, Any] | None, info: ValidationInfo) -> Any:
        """Checked against the match's protocol, so an error's path is `action`."""
        if action is None:
            return action
        if len(action) != 1:
            raise ValueError(
                f"action must have exactly one kind, one of: {', '.join(sorted(ACTIONS))}"
            )
        (kind,) = action
        if kind not in ACTIONS:
            raise ValueError(f"unknown action {kind!r} (one of: {', '.join(sorted(ACTIONS))})")
        if "match" in info.data:  # else the match's own error is reported
            check_action(action, info.data["match"])
        return action

    @model_validator(mode="after")
    def _check(self) -> FaultSpec:
        if (self.action is None) == (self.toxic is None):
            raise ValueError(
                "give exactly one of action (a message fault) or toxic (a stream toxic)"
            )
        if self.action is not None:
            self._protocols = check_action(self.action, self.match)
        return self

    @property
    def protocols(self) -> frozenset[str] | None:
        """Connection protocols (codec names) this fault is confined to, or None for any.

        A fault with no `match.protocol` whose action only one protocol
        understands (an abort naming a Kafka error) applies to that protocol alone.
        """
        return self._protocols

    @property
    def kind(self) -> str:
        if self.toxic is not None:
            return "toxic"
        assert self.action is not None
        return next(iter(self.action))
