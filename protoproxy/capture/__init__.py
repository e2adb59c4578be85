"""Taps: both legs of proxied connections written as pcapng (docs/captures.md#taps).

`packets` synthesises the TCP/IP packets, `pcapng` the file blocks, `redact`
and `hpack_redact` overwrite credentials in the byte streams, `writer` drains
a tap's bounded queue into rotated files on a thread, `hooks` is the only
data-path code (one tapped connection's byte hooks), `taps` the component the
App keeps as `app.captures`, and `routes` its admin API.
"""
