"""Workers: the claim → run → complete loop, engine adapters, heartbeats."""
