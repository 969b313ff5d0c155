"""The exception type that the command line turns into a one-line message (and the one for a
reference that cannot be searched with), and the warning that carries notes about an answer
(`Neighbors.notes`)."""


class LookalikeError(Exception):
    """An error caused by the user's input or environment; `str()` is a sentence for people."""


class LookalikeWarning(UserWarning):
    """A note about an answer that is still given (e.g. Mahalanobis on too few images); the
    same sentence is in `Neighbors.notes`, which the command line and the web viewer show."""


class BadReferenceError(LookalikeError):
    """A reference that cannot be searched with: a missing, skipped or unreadable file, a
    folder, a URL that is not in the collection, an image id that is not."""
