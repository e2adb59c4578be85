"""The admin API (aiohttp): metrics, state, faults, and Toxiproxy-compatible routes."""
