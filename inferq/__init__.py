"""inferq's command line: the composition root that wires the API, workers and server."""
