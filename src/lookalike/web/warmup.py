"""The start-up warm-up: counts the collection's models and builds its search matrix (and the
8-bit first pass of exact cosine search), then the graph index of cosine search (HNSW, on
collections large enough to use it), on a connection of its own, in a background thread, so
that the grid is served meanwhile, the first look-alikes come fast (exactly while the graph
is being built) and later ones come from the graph."""

from __future__ import annotations

import logging
import sys
import threading

from ..api import Collection

log = logging.getLogger("lookalike.web")


#: Where the warm-up says which search answers look-alikes (printed by a server that
#: announces its choices: `announce_search_choice`).
plan_log = logging.getLogger("lookalike.web.search")


def announce_search_choice() -> None:
    """Print, when the warm-up has decided them, which exact cosine pass serves this machine
    and the timings it was chosen by (search/exact.py logs it; large collections only), and
    which search answers look-alikes once the graph index is ready, with its calibration
    (`Collection.search_plan`, logged below)."""
    for logger in (logging.getLogger("lookalike.search.exact"), plan_log):
        if not any(getattr(h, "lookalike_announce", False) for h in logger.handlers):
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("lookalike: %(message)s"))
            handler.setLevel(logging.INFO)
            handler.lookalike_announce = True  # type: ignore[attr-defined]
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)


class WarmUp:
    """The warm-up of one app's collection. `models_ready` is clear while it counts the
    models: a request that needs them waits rather than counting them twice. What the
    warm-up loads (counts, search matrices, the 8-bit pass) is shared with the collection
    (`Collection.open(..., share_with=...)`)."""

    def __init__(self, collection: Collection, lock):
        self.collection = collection
        self.lock = lock
        self.done = threading.Event()  # set once the search matrix and its 8-bit pass are ready
        self.graph_done = threading.Event()  # set once the graph is built (or not needed)
        self.models_ready = threading.Event()
        self.models_ready.set()

    @property
    def warming_up(self) -> bool:
        return not self.done.is_set()

    def start(self) -> None:
        self.models_ready.clear()
        threading.Thread(target=self._run, name="lookalike-warm-up", daemon=True).start()

    def skip(self) -> None:
        self.done.set()
        self.graph_done.set()

    def wait_for_models(self, timeout: float) -> None:
        """Return once the warm-up has counted the models (or after `timeout` seconds)."""
        self.models_ready.wait(timeout)

    def _run(self) -> None:
        col = self.collection
        try:
            # A collection of its own connection that shares what it builds with `col`.
            with Collection.open(col.store.path, share_with=col) as side:
                log.debug("warm-up: models counted: %s", side.models)
                self.models_ready.set()
                _, first = side.images(limit=1)
                if first:
                    side.nearest_to_ids([first[0]["id"]], k=1)  # matrix file, row norms
                    side.prepare_for_many_searches()
                    self.done.set()
                    if side.prepare_graph():
                        log.info("graph index of cosine search ready")
                        plan_log.info("look-alikes: %s", side.search_plan().describe())
        except Exception:  # an empty collection, say: requests will tell the user
            log.debug("warm-up failed", exc_info=True)
        finally:
            self.models_ready.set()
            self.done.set()
            self.graph_done.set()
