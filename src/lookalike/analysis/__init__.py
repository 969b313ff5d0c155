"""What a collection holds, beyond single searches: copies and duplicate groups
(copies.py: is this pair a copy; duplicates.py: every group of copies)."""
