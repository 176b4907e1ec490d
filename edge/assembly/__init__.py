"""edge.assembly."""
