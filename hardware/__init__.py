"""Lane hardware: weighbridge indicators, barrier and lane display, with simulators."""
