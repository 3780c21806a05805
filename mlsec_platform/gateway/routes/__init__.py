"""The gateway's routers: files, events and health."""
