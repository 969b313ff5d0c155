"""Look-alikes: of images of the collection (POST, and GET as the page's URL asks for them) and
of an image file sent by the user."""

from __future__ import annotations

import os
from typing import Annotated, Literal, get_args

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ...api import DEFAULT_K, DEFAULT_METRIC, Collection, Neighbors
from ...ingest.decode import ImageSkipped, decode
from ...search.approximate import KINDS as APPROXIMATE_KINDS
from ...search.feedback import DEFAULT_REFINE_METHOD, REFINE_METHODS
from ...search.metrics import METRICS
from ...search.normalise import Normalisation
from ...search.text_queries import MAX_TEXT_CHARS
from ..errors import HTTPError, refusals
from ..state import State, ViewerState
from .common import NO_IMAGE, image_json

router = APIRouter()

_CANNOT_SEARCH = "a metric, model or search the collection cannot answer"
ImageIdValue = Annotated[int, Field(ge=1, le=2**63 - 1)]
ApproximateKind = Literal["hnsw", "ivf", "ivfpq", "scan"]
Approximate = Literal["true", "false", ApproximateKind]
RefineMethod = Literal["linear", "rocchio", "exemplar"]
assert set(get_args(RefineMethod)) == set(REFINE_METHODS)  # the core's methods, no more
assert set(get_args(ApproximateKind)) == set(APPROXIMATE_KINDS)  # the core's index kinds


class NeighborsQuery(BaseModel):
    """What `POST /api/neighbors` takes. Strict: JSON `true` is not the number 1 (k, ids)."""

    model_config = ConfigDict(strict=True)

    references: list[ImageIdValue] = Field(
        ..., min_length=1, max_length=1000, description="ids of the reference images")
    k: int | None = Field(DEFAULT_K, ge=1, le=100_000,
                          description="how many look-alikes; null ranks every image")
    metric: str = Field(DEFAULT_METRIC, description=f"one of {', '.join(METRICS)} (any case)")
    model: str | None = Field(None, description="one of the collection's models; null: its "
                                                "default")
    include_references: bool = Field(False, description="also rank the references themselves")
    category: str | None = Field(None, description="only images of this category (and its "
                                                   "sub-folders)")
    approximate: bool | ApproximateKind | None = Field(
        None, description="null: the policy of `lookalike similar` (exact on small "
                          "collections, the graph index once built or on large ones); true, "
                          "\"hnsw\", \"ivf\", \"ivfpq\" or \"scan\": FAISS (faster on large "
                          "collections, may miss a few true neighbours); false: exact")
    unlike: list[ImageIdValue] = Field(
        [], max_length=1000, description="ids of images marked \"not like this\": alone, "
        "the search ranks by the distance to the nearest reference minus half the distance to "
        "the nearest of these (exact; `approximate` is then ignored)")
    like: list[ImageIdValue] = Field(
        [], max_length=1000, description="ids of images marked \"more like this\": with them "
        "(or with `refine`) the answer is `Collection.refine` of the references and these "
        "against `unlike`, ranked by `score` (cosine distances; `metric` is ignored)")
    refine: RefineMethod | None = Field(
        None, description="how to refine from the marks (linear, rocchio or exemplar; null: "
                          "linear when `like` is given, else no refine)")
    normalise: str | None = Field(
        None, max_length=200, description="normalise the vectors per group of this column "
        "first (\"plate\", or \"plate,channel\"): each plate centred and scaled against its "
        "`controls`, as `lookalike similar --normalise` (exact; not with `like`)")
    controls: str | None = Field(
        None, max_length=2000, description="with `normalise`: the control wells (\"A01,A02\") "
        "or COLUMN=VALUE (\"condition=DMSO\"); null: all the plate's images")


@router.post("/api/neighbors", summary="The look-alikes of images of the collection",
             responses=refusals(s400=_CANNOT_SEARCH + ", or a normalisation it cannot make",
                                s404=NO_IMAGE, s413="a request body over the size limit"))
def neighbors(state: State, query: NeighborsQuery):
    """The k images nearest to the references (an image's distance is its distance to the
    nearest reference), nearest first, with the fields of `lookalike similar --format
    json`; `notes` are sentences a person should read with the answer (Mahalanobis on too
    few images, say); `normalised`, with `normalise`, says how the vectors were normalised."""
    return find_neighbors(state, query)


@router.get("/api/neighbors", summary="The look-alikes, as the page's URL asks for them",
            responses=refusals(s400=_CANNOT_SEARCH, s404=NO_IMAGE))
def neighbors_get(state: State,
                  ref: Annotated[list[ImageIdValue], Query(min_length=1, max_length=1000)],
                  k: Annotated[int | None, Query(ge=1, le=100_000)] = DEFAULT_K,
                  metric: str = DEFAULT_METRIC, model: str | None = None,
                  include_references: bool = False, category: str | None = None,
                  approximate: Approximate | None = None,
                  unlike: Annotated[list[ImageIdValue] | None, Query(max_length=1000)] = None,
                  like: Annotated[list[ImageIdValue] | None, Query(max_length=1000)] = None,
                  refine: RefineMethod | None = None,
                  normalise: Annotated[str | None, Query(max_length=200)] = None,
                  controls: Annotated[str | None, Query(max_length=2000)] = None):
    """The JSON twin of the page's `/?ref=...` view; same answer as `POST /api/neighbors`."""
    return find_neighbors(state, NeighborsQuery(
        references=ref, k=k, metric=metric, model=model,
        include_references=include_references, category=category,
        approximate=_approximate(approximate), unlike=unlike or [], like=like or [],
        refine=refine, normalise=normalise or None, controls=controls or None))


@router.post("/api/neighbors/upload", summary="The look-alikes of an image file you send",
             responses=refusals(s400=_CANNOT_SEARCH, s413="a file over the size limit",
                                s415="a file that is not a usable image"))
def neighbors_upload(state: State,
                     file: Annotated[UploadFile, File(description="an image file")],
                     k: Annotated[int, Form(ge=1, le=100_000)] = DEFAULT_K,
                     metric: Annotated[str, Form()] = DEFAULT_METRIC,
                     model: Annotated[str | None, Form()] = None,
                     category: Annotated[str | None, Form()] = None,
                     approximate: Annotated[Approximate | None, Form()] = None):
    """Embeds the file (at most `max_upload_bytes`, see /api/collection) and returns its
    look-alikes in the collection; the file is not added to it."""
    limit = state.max_upload_bytes
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPError(413, f"the file is larger than {limit:,} bytes")
    name = os.path.basename(file.filename or "upload")
    try:
        decode(data, 64)  # refuse what is not an image before the model sees it
    except ImageSkipped as exc:
        raise HTTPError(415, f"{name}: {exc.reason}") from None
    res = _search_upload(state, data, name, k=k, metric=metric, model=model or None,
                         category=category or None, approximate=_approximate(approximate))
    reference = {"name": name, "upload": True, "size": len(data)}
    return _neighbors_response(state.collection, res, [reference], k)


@router.get("/api/neighbors/text", summary="The images a text describes",
            responses=refusals(s400="a model without a text tower, or a search the "
                                    "collection cannot answer"))
def neighbors_text(state: State,
                   q: Annotated[str, Query(min_length=1, max_length=MAX_TEXT_CHARS,
                                           description="the text, e.g. a cell in mitosis")],
                   k: Annotated[int | None, Query(ge=1, le=100_000)] = DEFAULT_K,
                   metric: str = DEFAULT_METRIC, model: str | None = None,
                   category: str | None = None, approximate: Approximate | None = None):
    """The k images nearest to the text, embedded by the text tower paired with the model
    (the collection's models that have one: `text_models` in /api/collection)."""
    state.warmup.wait_for_models(120)
    with state.lock:  # it may load the text model
        res = state.collection.nearest(text=q, k=k, metric=metric, model=model or None,
                                       category=category or None,
                                       approximate=_approximate(approximate))
    return _neighbors_response(state.collection, res,
                               [{"name": res.references[0], "text": q.strip()}], k)


def find_neighbors(state: ViewerState, query: NeighborsQuery) -> JSONResponse:
    """The answer of `POST /api/neighbors` (and of its GET twin) to a validated query."""
    col = state.collection
    ids = list(dict.fromkeys(query.references))
    references = _usable_rows(col, ids)
    how = _normalisation(query)
    if query.unlike or query.like or query.refine:
        return _find_with_marks(state, query, references, how)
    state.warmup.wait_for_models(120)  # counted by the warm-up: no need to do it twice
    # Searches asked for at the same time are answered by one pass over the matrix
    # (search/exact.py).
    res = col.nearest_to_ids(ids, k=query.k, metric=query.metric, model=query.model,
                             include_references=query.include_references,
                             category=query.category or None, approximate=query.approximate,
                             normalise=query.normalise, controls=query.controls)
    return _neighbors_response(col, res, references, query.k, **how)


def _normalisation(query: NeighborsQuery) -> dict[str, str]:
    """`{"normalised": "normalised per plate against ..."}` for a query that asks for it
    (the panel says so with the answer), {} otherwise; 400 for one that cannot be answered
    (the collection's own checks, a missing column say, come from the search)."""
    how = Normalisation.of(query.normalise, query.controls)
    if how is None:
        return {}
    if query.like or query.refine:
        raise HTTPError(400, "more like this (like, refine) refines on the stored vectors, "
                             "not normalised ones; leave out normalise or the like marks")
    return {"normalised": how.describe()}


def _usable_rows(col: Collection, ids: list[int]) -> list[dict]:
    """The catalogue rows of `ids`, in their order; 404 for the first that is not a usable
    image of the collection."""
    rows = col.store.rows(ids)
    found = {r["id"] for r in rows if r["skip_reason"] is None}
    missing = [i for i in ids if i not in found]
    if missing:
        raise HTTPError(404, f"image {missing[0]}: no such image in the collection")
    by_id = {r["id"]: r for r in rows}
    return [by_id[i] for i in ids]


def _find_with_marks(state: ViewerState, query: NeighborsQuery,
                     references: list[dict], how: dict[str, str]) -> JSONResponse:
    """The look-alikes of references with images marked "not like this" (`unlike`) or "more
    like this" (`like`, or `refine` asked for): `Collection.nearest(..., unlike=...)` or
    `Collection.refine` of the references and the liked images against the unliked ones."""
    col = state.collection
    ref_ids = [r["id"] for r in references]
    liked = [i for i in dict.fromkeys(query.like) if i not in ref_ids]
    unliked = list(dict.fromkeys(query.unlike))
    both = [i for i in unliked if i in ref_ids or i in liked]
    if both:
        side = "a reference" if both[0] in ref_ids else "liked"
        raise HTTPError(400, f"image {both[0]}: is both {side} and unliked; mark each image "
                             "on one side only")
    like_rows, unlike_rows = _usable_rows(col, liked), _usable_rows(col, unliked)
    state.warmup.wait_for_models(120)
    positives = [r["path"] for r in references + like_rows]
    negatives = [r["path"] for r in unlike_rows]
    category = query.category or None
    method = (query.refine or DEFAULT_REFINE_METHOD) if like_rows or query.refine else None
    if method is not None:
        res = col.refine(positives, negatives, k=query.k, method=method, model=query.model,
                         include_references=query.include_references, category=category)
    else:
        res = col.nearest(positives, k=query.k, metric=query.metric, model=query.model,
                          include_references=query.include_references, category=category,
                          unlike=negatives, normalise=query.normalise, controls=query.controls)
    return _neighbors_response(col, res, references, query.k,
                               like=[image_json(r) for r in like_rows],
                               unlike=[image_json(r) for r in unlike_rows], refine=method, **how)


def _search_upload(state: ViewerState, data: bytes, name: str, **search) -> Neighbors:
    """The look-alikes of an uploaded image's bytes, `name` standing for it in the answer; one
    upload search at a time (it may load a model)."""
    state.warmup.wait_for_models(120)
    with state.lock:
        return state.collection.nearest(data, name=name, **search)


def _neighbors_response(col: Collection, res: Neighbors, references: list[dict],
                        k: int | None, **marks) -> JSONResponse:
    # The answer is plain JSON already; a JSONResponse skips FastAPI's generic encoder.
    credits = col.attributions(res.rows + [r for r in references if "root" in r])
    return JSONResponse({
        "model": res.model, "metric": res.metric, "k": k,
        "references": [image_json(r) if "id" in r else r for r in references],
        "neighbors": res.to_records(), "notes": res.notes, "attributions": credits,
        "method": res.method, **marks})


def _approximate(text: Approximate | None) -> bool | ApproximateKind | None:
    """A query or form value of `approximate` as `Collection.nearest` takes it."""
    if text == "true":
        return True
    if text == "false":
        return False
    return text
