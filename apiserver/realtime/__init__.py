"""Live events over Socket.IO: publisher, hub, namespace, server and transport (see ``mount``)."""
