"""Engine adapters behind the ``workers.engine.Engine`` Protocol."""
