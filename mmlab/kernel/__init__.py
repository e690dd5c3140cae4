"""Models of kernel/ (fork)."""
