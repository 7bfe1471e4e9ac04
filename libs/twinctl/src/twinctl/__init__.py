"""twinctl: the AI Factory Twin ops CLI (a gRPC client of the twin services)."""
