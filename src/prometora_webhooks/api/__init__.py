"""The HTTP API (FastAPI): routes per resource, pydantic schemas at the edge."""
