"""The files and folders kept beside a catalogue database `<db>`: the search matrix cache
(`<db>.vectors/`), the FAISS indexes (`<db>.faiss/`), the web viewer's thumbnails
(`<db>.thumbs/`), the maps (`<db>.maps/`), the matrix cut in shards for a cluster's workers
(`<db>.shards/`) and what the viewer's worker processes share (`<db>.viewer/`). Each is named
here once; all are caches, rebuilt when missing."""

from __future__ import annotations

from pathlib import Path


def beside(db: Path, suffix: str) -> Path:
    return db.with_name(db.name + suffix)


def vectors_folder(db: Path) -> Path:
    """The memory-mapped search matrices, one per model and catalogue generation."""
    return beside(db, ".vectors")


def faiss_folder(db: Path) -> Path:
    """The approximate (FAISS) indexes, one per model, metric family and kind."""
    return beside(db, ".faiss")


def thumbnails_folder(db: Path) -> Path:
    """The web viewer's thumbnail cache."""
    return beside(db, ".thumbs")


def maps_folder(db: Path) -> Path:
    """The 2-D layouts (maps) of the collection, one per model and method."""
    return beside(db, ".maps")


def shards_folder(db: Path) -> Path:
    """The search matrices cut in shards, one folder per model and catalogue generation, that
    a Dask cluster's workers search (`similar --cluster`)."""
    return beside(db, ".shards")


def viewer_folder(db: Path) -> Path:
    """What the web viewer's worker processes share: the locks of the computations that one
    of them does for all (maps, analyses, groups of copies) and the groups it found."""
    return beside(db, ".viewer")


__all__ = ["faiss_folder", "maps_folder", "shards_folder", "thumbnails_folder", "vectors_folder",
           "viewer_folder"]
