"""Pure rules and types of the webhook domain: no I/O."""
