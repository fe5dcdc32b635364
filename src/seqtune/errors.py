"""The one exception type for bad input: its message is shown to the user as it is, with no traceback."""


class SeqtuneError(Exception):
    """A problem with the user's input, files or configuration, stated in one paragraph."""
