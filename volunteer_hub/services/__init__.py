"""Domain operations: each takes a session and plain arguments, enforces the rules, and
commits or raises a domain error. Nothing here knows about Flask requests."""
