"""tools.synth."""
