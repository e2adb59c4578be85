"""HTTP/1.1, HTTP/2 and gRPC in the runtime: metrics, inventory, h2c handover."""
