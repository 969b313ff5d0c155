"""Where images are kept: the SQLite catalogue (the only place that speaks SQL), the memory-mapped
search matrix, and the files that live beside a database."""
