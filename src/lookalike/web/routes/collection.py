"""What the collection holds: its counts, models, defaults and credits; its categories."""

from __future__ import annotations

from fastapi import APIRouter

from ...api import DEFAULT_K, DEFAULT_METRIC, RECORD_FIELDS
from ...search.metrics import METRICS
from .. import files
from ..state import State

router = APIRouter()


@router.get("/api/collection", summary="What the collection holds")
def collection_info(state: State):
    """Number of images, models with their image counts, the default model and metric,
    every metric, and the credits that must be shown with the images; the models a text can
    search (those with a text tower of yours, `lookalike models add-text`); the defaults of a
    search and of the grid, the thumbnail sizes, and the fields of a look-alike record
    (in export order)."""
    col = state.collection
    state.warmup.wait_for_models(60)  # meanwhile other requests go on
    count = len(col)
    models = col.models
    default = col.default_model if models else None
    return {"name": col.store.path.name, "count": count, "models": models,
            "default_model": default, "metrics": list(METRICS),
            "default_metric": DEFAULT_METRIC, "attributions": col.attributions(),
            "extra_columns": col.extra_columns(),
            "thumbnail_sizes": list(files.THUMBNAIL_SIZES),
            "defaults": {"metric": DEFAULT_METRIC, "k": DEFAULT_K,
                         "thumbnail_size": files.DEFAULT_THUMBNAIL_SIZE},
            "record_fields": list(RECORD_FIELDS),
            "max_upload_bytes": state.max_upload_bytes,
            "text_models": col.text_models,
            "warming_up": state.warmup.warming_up}


@router.get("/api/categories", summary="Categories with their image counts")
def categories(state: State):
    """Every category (sub-folder), its own sub-folders' images included in its count."""
    return {"categories": [{"name": name, "count": n}
                           for name, n in state.collection.categories().items()]}
