"""Prometora Webhooks: signed, retried, logged webhooks for marketplace stores."""

__version__ = "0.1.0"
