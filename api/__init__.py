"""The inferq HTTP API: a thin FastAPI layer over the queue."""
