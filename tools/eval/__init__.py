"""tools.eval."""
