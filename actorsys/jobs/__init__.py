"""Durable jobs: the state model, the store interface and its implementations."""
