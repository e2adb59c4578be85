"""The one error a bad stub mapping raises.

A user's mapping files are outside input: every problem in them must say which
file and where inside the mapping, the way a compiler names file and line, so
a typo in a 300-mapping folder is found without bisecting.
"""

from __future__ import annotations


class MappingError(ValueError):
    """`mappings/a.json: request.bodyPatterns[0]: unknown matcher 'equalTox'`."""

    def __init__(self, where: str, message: str, source: str = "") -> None:
        self.source = source
        self.where = where
        self.message = message
        super().__init__(self._text())

    def _text(self) -> str:
        parts = [p for p in (self.source, self.where) if p]
        return ": ".join([*parts, self.message])

    def in_source(self, source: str) -> MappingError:
        """The same error, now naming the file (parsing does not know it)."""
        return MappingError(self.where, self.message, source)

    def under(self, prefix: str) -> MappingError:
        """The same error with its path inside a larger document (`mappings[3].`)."""
        where = f"{prefix}.{self.where}" if self.where else prefix
        return MappingError(where, self.message, self.source)
