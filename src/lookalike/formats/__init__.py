"""How results go out: the one list of record fields, Orange .tab helpers, export to files,
and thumbnails."""
