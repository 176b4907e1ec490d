"""edge.runtime."""
