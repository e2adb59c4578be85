"""Generated protobuf modules; regenerate with gen_protos.py."""
