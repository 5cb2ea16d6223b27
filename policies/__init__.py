"""Shipped policies, installed as the ``callgate.policies`` package (see pyproject.toml)."""
