"""Exceptions whose message is shown to the user as it is, with no traceback."""


class SeqtuneError(Exception):
    """A problem with the user's input, files or configuration, stated in one paragraph."""


class TrainingDiverged(SeqtuneError):
    """The training loss became NaN or infinite (a learning rate too high, fp16 overflow, ...).

    A sweep counts such a run as failed and goes on; a single run reports it like any other error.
    """


class TrainingStopped(BaseException):
    """A run stopped cleanly on SIGINT/SIGTERM after writing a checkpoint (see training/stops.py).

    Not an Exception: a sweep (which counts failed runs and goes on) stops with it, like with Ctrl-C.
    The message says how to resume; `exit_code` is 128 + the signal number (130, 143)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
