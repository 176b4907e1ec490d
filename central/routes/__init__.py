"""JSON API routers; `central.api.create_app` mounts them."""
