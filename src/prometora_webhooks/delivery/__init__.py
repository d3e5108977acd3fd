"""Outbound HTTP: the guarded client, the worker loop."""
