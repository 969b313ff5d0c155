"""The web app's routes, one module per area, each an `APIRouter` whose handlers reach the
app's shared state through `Depends(get_state)`; `ROUTERS` in the order of the API's
documentation."""

from . import analysis, collection, duplicates, explain, files, images, map, neighbours, pages

ROUTERS = [pages.router, collection.router, images.router, neighbours.router, explain.router,
           files.router, duplicates.router, map.router, analysis.router]

__all__ = ["ROUTERS"]
