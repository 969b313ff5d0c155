"""A collection as a whole: each image's cluster, typicality and outlier score, a diverse
sample and the quality flags, computed from the stored vectors (`Collection.analyze`).

Results are stored in the catalogue per model and catalogue generation, and recomputed only
when the collection changed, other clusters are asked for, or a larger sample.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import LookalikeError
from . import quality as q
from .clusters import check_clusters, find_clusters
from .outliers import OUTLIER_K, outlier_scores
from .sample import farthest_first, most_typical
from .space import reduce

#: Bumped when the way results are computed changes, so that stored ones are recomputed.
ANALYSIS_VERSION = 1

#: Examples shown per cluster in a summary, and images in "most unusual".
EXAMPLES = 3
UNUSUAL = 10


@dataclass
class ClusterSummary:
    cluster: int            # -1: the images in no cluster (noise)
    size: int
    examples: list[int]     # ids of its most typical images


@dataclass
class Analysis:
    """What `Collection.analyze` found; every per-image array is in the order of `ids`."""

    model: str
    method: str             # "hdbscan", "kmeans" or "single"
    ids: np.ndarray
    cluster: np.ndarray
    typicality: np.ndarray
    outlier: np.ndarray
    sample: list[int]       # ids, in the order picked
    flags: dict[str, np.ndarray]
    rows: list[dict] = field(repr=False)
    reused: bool = False    # read back from the catalogue rather than computed
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def clusters(self) -> list[ClusterSummary]:
        """Every cluster, largest first, then the noise, each with its most typical images."""
        out = []
        for c in [*range(int(self.cluster.max(initial=-1)) + 1), -1]:
            members = np.flatnonzero(self.cluster == c)
            if not len(members):
                continue
            best = members[np.lexsort((self.outlier[members], -self.typicality[members]))]
            out.append(ClusterSummary(c, len(members), self.ids[best[:EXAMPLES]].tolist()))
        return sorted(out, key=lambda s: (s.cluster < 0, -s.size, s.cluster))

    @property
    def flag_counts(self) -> dict[str, int]:
        return {name: int(v.sum()) for name, v in self.flags.items()}

    def most_unusual(self, n: int = UNUSUAL) -> list[int]:
        """Ids of the `n` images with the highest outlier scores, highest first."""
        return self.ids[np.lexsort((self.ids, -self.outlier))[:n]].tolist()

    def row(self, image_id: int) -> dict:
        return self.rows[int(np.searchsorted(self.ids, image_id))]

    def columns(self) -> dict[str, Any]:
        """Per-image columns: id, path, name, category, cluster, typicality, outlier,
        sample_rank (-1: not in the sample), then the flags."""
        rank = np.full(len(self.ids), -1, np.int64)
        rank[np.searchsorted(self.ids, self.sample)] = np.arange(len(self.sample))
        return {"id": self.ids, "path": [r["path"] for r in self.rows],
                "name": [r["name"] for r in self.rows],
                "category": [r["category"] for r in self.rows], "cluster": self.cluster,
                "typicality": self.typicality, "outlier": self.outlier, "sample_rank": rank,
                **self.flags}

    def to_pandas(self):
        """One row per image (see `columns`), as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.columns())


def analyze(store, model: str, ids: np.ndarray, matrix: np.ndarray,
            clusters: str | int = "auto", sample: int | None = None) -> Analysis:
    """The Analysis of the images `ids` (rows of `matrix`), from the catalogue when stored
    for this generation and these settings, else computed and stored."""
    started = time.perf_counter()
    n = len(ids)
    if n < 2:
        raise LookalikeError(f"{store.path}: the collection has "
                             f"{'one image' if n else 'no images'}; analysing it needs at "
                             "least two")
    clusters = check_clusters(clusters, n)
    if sample is not None and not 1 <= int(sample) <= n:
        raise LookalikeError(f"sample: {sample} is out of range; give 1 to {n:,}")
    settings = {"version": ANALYSIS_VERSION, "generation": store.generation,
                "clusters": clusters, "outlier_k": OUTLIER_K}
    stored = _stored(store, model, settings, ids, sample or 0)
    if stored is not None:
        cluster, typicality, outlier, ranks, method = stored
        reused = True
    else:
        cluster, typicality, outlier, ranks, method = _compute(matrix, clusters, sample or 0)
        store.write_analysis(model, ids, cluster, typicality, outlier, ranks,
                             json.dumps({**settings, "method": method,
                                         "sampled": int((ranks >= 0).sum())}))
        reused = False
    picked = np.flatnonzero(ranks >= 0)
    order = picked[np.argsort(ranks[picked])][:sample or 0]
    rows = store.rows(ids)
    flags = image_flags(store, ids, rows)
    return Analysis(model, method, ids, cluster, typicality, outlier, ids[order].tolist(),
                    flags, rows, reused, time.perf_counter() - started)


def _stored(store, model: str, settings: dict, ids: np.ndarray, sample: int):
    """The stored results if they were made for `settings` and cover a sample of `sample`."""
    found = store.read_analysis(model)
    if found is None:
        return None
    text, columns = found
    try:
        meta = json.loads(text)
    except ValueError:
        return None
    if any(meta.get(key) != value for key, value in settings.items()):
        return None
    if meta.get("sampled", 0) < sample or not np.array_equal(columns["image_id"], ids):
        return None
    return (columns["cluster"], columns["typicality"], columns["outlier"],
            columns["sample_rank"], str(meta.get("method", "")))


def _compute(matrix: np.ndarray, clusters: str | int, sample: int):
    space = reduce(np.asarray(matrix, np.float32))
    found = find_clusters(space.clustering, clusters)
    outlier = outlier_scores(space.distances)
    ranks = np.full(len(matrix), -1, np.int64)
    if sample:
        start = most_typical(found.typicality, space.distances)
        ranks[farthest_first(space.distances, sample, start)] = np.arange(sample)
    return found.labels, found.typicality, outlier, ranks, found.method


def stored_clusters(store, model: str) -> str | int:
    """The `clusters` setting of the analysis stored for `model`, else "auto"."""
    found = store.read_analysis(model)
    try:
        return json.loads(found[0])["clusters"] if found else "auto"
    except (ValueError, KeyError):
        return "auto"


def image_flags(store, ids: np.ndarray, rows: list[dict]) -> dict[str, np.ndarray]:
    """The quality flags of images by id (rows: their catalogue rows, in the same order);
    pixels measured before schema 5 are measured now, once."""
    measure_unmeasured(store)
    return q.flags(store.quality(ids), [r["width"] or 0 for r in rows],
                   [r["height"] or 0 for r in rows])


def measure_unmeasured(store, input_size: int = 224) -> int:
    """Measure the pixels of the usable images indexed before quality flags existed (files
    gone or changed since are left unmeasured); returns how many were measured."""
    from concurrent.futures import ThreadPoolExecutor

    from ..ingest import decode
    from ..ingest.originals import read_catalogued

    todo = store.unmeasured()
    if not todo:
        return 0

    def one(item) -> tuple[bytes, tuple[float, ...]] | None:
        _, locator, content_hash = item
        try:
            data = read_catalogued(locator, content_hash)
            return content_hash, q.measure(decode.decode(data, input_size).pixels)
        except (OSError, decode.ImageSkipped):
            return None

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="lookalike-measure") as pool:
        measured = [m for m in pool.map(one, todo) if m is not None]
    if measured:
        store.write_quality(measured)
    return len(measured)


def stored_columns(store, model: str | None, ids: np.ndarray) -> dict[str, np.ndarray]:
    """What is known of images `ids` without computing anything, for exports: cluster,
    typicality and outlier when `model`'s analysis is stored for this generation, and the
    flags when pixels were measured. Arrays in the order of `ids`; missing values are -1
    (cluster) or NaN."""
    out: dict[str, np.ndarray] = {}
    found = store.read_analysis(model) if model else None
    if found is not None and _current(store, found[0]):
        columns = found[1]
        stored_ids = columns["image_id"]
        position = np.minimum(np.searchsorted(stored_ids, ids), max(len(stored_ids) - 1, 0))
        there = (stored_ids[position] == ids) if len(stored_ids) else np.zeros(len(ids), bool)
        out["cluster"] = np.where(there, columns["cluster"][position], -1)
        for name in ("typicality", "outlier"):
            out[name] = np.where(there, columns[name][position], np.nan)
    measures = store.quality(ids)
    if len(ids) and not np.isnan(measures).all():
        rows = {r["id"]: r for r in store.rows(ids)}
        sizes = [(rows[i]["width"] or 0, rows[i]["height"] or 0) if i in rows else (0, 0)
                 for i in ids.tolist()]
        out.update(q.flags(measures, [w for w, _ in sizes], [h for _, h in sizes]))
    return out


def current_settings(store, model: str) -> str | None:
    """The settings (JSON text) of the analysis stored for `model` if it was made for the
    catalogue as it is now, else None."""
    found = store.get_setting("analysis:" + model)
    return found if found is not None and _current(store, found) else None


def _current(store, settings: str) -> bool:
    try:
        meta = json.loads(settings)
    except ValueError:
        return False
    return meta.get("version") == ANALYSIS_VERSION and meta.get("generation") == store.generation
