"""The OpenAI protocol: request schemas, the field rules, response and stream shaping.

No FastAPI here: the API's routes, the workers and batch tasks all use it.
"""
