"""The queueing core: job schemas, cost model, catalogue, Redis keys and stream commands."""
