"""lookalike: find look-alike images in a collection.

    import lookalike
    col = lookalike.Collection.index(["photos/"], db="photos.db")
    res = col.nearest(["photos/cat.jpg"], k=10, metric="cosine")
    lookalike.distances(X, Y, metric="pearson")
"""

__version__ = "0.1.0"

from .api import Collection, Neighbors  # noqa: E402
from .errors import LookalikeError, LookalikeWarning  # noqa: E402
from .search.metrics import METRICS, distances  # noqa: E402

__all__ = ["Collection", "Neighbors", "LookalikeError", "LookalikeWarning", "METRICS", "distances",
           "__version__"]
