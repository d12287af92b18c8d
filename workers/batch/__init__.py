"""Offline batches: arq tasks that validate, expand, collect and finalise OpenAI batch files."""
