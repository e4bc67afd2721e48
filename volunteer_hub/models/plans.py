"""Models of the plans aggregate (filled in by its issue)."""
