"""Models of the notifications aggregate (filled in by its issue)."""
