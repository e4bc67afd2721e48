"""Models of the attendance aggregate (filled in by its issue)."""
