"""Tokens, password hashing, roles and the permission policy."""
