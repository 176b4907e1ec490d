"""central.domain."""
