"""Exceptions whose message is shown to the user as it is, with no traceback."""


class SeqtuneError(Exception):
    """A problem with the user's input, files or configuration, stated in one paragraph."""


class TrainingDiverged(SeqtuneError):
    """The training loss became NaN or infinite (a learning rate too high, fp16 overflow, ...).

    A sweep counts such a run as failed and goes on; a single run reports it like any other error.
    """
