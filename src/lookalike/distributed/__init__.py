"""Running lookalike's work on a Dask cluster: connecting to one (`client`), indexing in shards
on its workers, and searching vector shards held beside the database."""
