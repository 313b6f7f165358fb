"""HTTP(S) objects as a source for manifest entries: fetch.py (checked connections, redirects by
hand), objects.py (stat by HEAD, pinned ranged reads that resume)."""
