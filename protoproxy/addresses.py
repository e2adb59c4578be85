"""Address facts shared by the config and the admin API's guard.

A leaf module: the config validates with these and the guard checks requests
with them, and neither may import the other's runtime for it.
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address: what only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
