"""SIGINT/SIGTERM: stop a run after the current iteration with a checkpoint, or at once on a second signal."""

import signal
import threading


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the run; ``exit_code`` is the shell's ``128 + signal`` (130 / 143).

    A KeyboardInterrupt, so that Ctrl-C in Python still stops a caller; ``checkpoint`` says whether the
    run wrote one at ``iteration`` (a second signal stops at once, keeping the previous checkpoint).
    """

    def __init__(self, signum, iteration=None, checkpoint=False):
        self.signum, self.iteration, self.checkpoint = signum, iteration, checkpoint
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(
            f"interrupted by {self.signal_name}" + (f" at iteration {iteration}" if iteration is not None else "")
        )


class StopRequest:
    """SIGINT/SIGTERM handlers that ask the loop to stop after the current iteration; a second signal stops
    at once.  Only the main thread can install handlers; elsewhere the defaults stay."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, immediate=False):
        self.signum = None
        self.immediate = immediate  # distributed runs: the workers cannot agree on a common last iteration
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.immediate or self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False
