"""SmartGate: shared contract, configuration and command line."""
