"""What lookalike finds out about a collection as a whole, beyond one search: groups of
copies (duplicates.py) and the strict check that tells a copy from a look-alike (copies.py)."""
