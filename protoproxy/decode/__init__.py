"""`protoproxy decode FILE.pcap`: a capture decoded by the live proxy's own codecs.

pcap.py reads packets, tcp.py reassembles byte streams, sniff.py picks a codec,
stream.py drives it as the proxy does (UPSTREAM/DOWNSTREAM feeds, `written`
at the packet's time), records.py turns Exchanges into rows, output.py and
summary.py print them, cli.py is the subcommand.
"""
