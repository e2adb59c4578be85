"""Observability: the stats store, exporters, access log and message tail."""
