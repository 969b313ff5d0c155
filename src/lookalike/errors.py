"""The one exception type that the command line turns into a one-line message."""


class LookalikeError(Exception):
    """An error caused by the user's input or environment; `str()` is a sentence for people."""
