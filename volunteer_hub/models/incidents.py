"""Models of the incidents aggregate (filled in by its issue)."""
