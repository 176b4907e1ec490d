"""edge.recognition."""
