"""hardware.weighbridge."""
