"""Stand-in for `unicore.distributed` (import-only package)."""
