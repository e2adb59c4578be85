"""Kafka in the runtime: per-broker listeners, address rewriting, metrics, routing data."""
