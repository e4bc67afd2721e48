"""Marshmallow schemas: the shape of requests and responses, and so the OpenAPI document."""
