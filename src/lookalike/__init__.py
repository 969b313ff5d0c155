"""lookalike: find look-alike images in a collection.

    import lookalike
    col = lookalike.Collection.index(["photos/"], db="photos.db")
    res = col.nearest(["photos/cat.jpg"], k=10, metric="cosine")
    lookalike.distances(X, Y, metric="pearson")
"""

from .api import Collection, Neighbors
from .errors import LookalikeError, LookalikeWarning
from .ingest.reading import ReadingOptions
from .search.metrics import METRICS, distances
from .version import __version__

__all__ = ["Collection", "Neighbors", "LookalikeError", "LookalikeWarning", "METRICS",
           "ReadingOptions", "distances", "__version__"]
