"""The one exception every reader raises for an input that is not a usable image: a leaf, so
that the decoders of ordinary images and of scientific stacks can both raise it."""

from __future__ import annotations


class ImageSkipped(Exception):
    """An input that is not a usable image. `str(exc)` is the reason, for people."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


__all__ = ["ImageSkipped"]
