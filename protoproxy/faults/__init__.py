"""Fault injection: stream toxics and protocol-aware message faults, one engine."""
