"""SmartGate's own plate recognizer: renderer, model, training and export (issue 18)."""
