"""HTTP handlers: one module per resource, each handler validates, calls a service, serializes."""
