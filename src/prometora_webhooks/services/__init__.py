"""Use cases: the API, dashboard, CLI and worker all go through these."""
