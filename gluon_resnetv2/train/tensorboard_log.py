"""TensorBoard event files of a run (``train --tensorboard``, the default): ``<out>/tensorboard/``.

The curves of the paper's Figure 1 (training loss and error, test loss and error), the learning rate and
the training speed, written by tensorboardX (maintained; mxboard breaks on protobuf >= 4) at exactly the
iterations of ``log.csv``'s rows, with the iteration as the step: ``tensorboard --logdir OUT`` shows one run,
``tensorboard --logdir`` of a reproduce output directory compares a table's rows (each row's run directory
holds its own ``tensorboard/``).  Rank 0 writes, like ``log.csv``.

A resumed run continues the same curves: the event files of the earlier sessions are cut back to the
checkpoint's iteration (the points logged after it, before the stop, are dropped from disk, as ``log.csv``
is truncated), and the new session's writer marks a restart at the next step (``purge_step``), which
TensorBoard's own reader uses to hide any such orphaned points.
"""

import glob
import os
import struct

from ..fileio import atomic_write_bytes
from .ema import EMA_COLUMNS

#: The run directory's subdirectory of event files.
TENSORBOARD_DIR = "tensorboard"

#: ``log.csv`` column (or extra value of a row) -> TensorBoard tag.  Errors are fractions, as in log.csv.
TAGS = {
    "train_loss": "train/loss",
    "train_error": "train/error",
    "test_loss": "test/loss",
    "test_error": "test/error",
    "test_top5_error": "test/top5_error",
    "lr": "lr",
    "images_per_second": "speed/images_per_second",
    # --ema: the weight average's evaluation beside the weights' (ema_test_loss -> ema/test_loss)
    **{name: "ema/" + name.removeprefix("ema_") for name in EMA_COLUMNS},
}

# A TFRecord: little-endian uint64 length, its masked CRC (4 bytes), the data, the data's masked CRC.
_HEADER = struct.Struct("<Q")


def event_files(out_dir):
    """The event files of a run directory, in the order TensorBoard reads them (by name)."""
    return sorted(glob.glob(os.path.join(out_dir, TENSORBOARD_DIR, "events.out.tfevents.*")))


def _records(data):
    """``(raw record bytes, payload)`` of every complete record in ``data`` (a torn last one is dropped)."""
    offset = 0
    while offset + 12 <= len(data):
        (length,) = _HEADER.unpack_from(data, offset)
        end = offset + 12 + length + 4
        if end > len(data):
            break
        yield data[offset:end], data[offset + 12 : offset + 12 + length]
        offset = end


def truncate_events(out_dir, last_step):
    """Drop every event with a step above ``last_step`` from the run's event files (rewritten atomically);
    what a resume from the checkpoint at iteration ``last_step`` does, as :func:`.runlog.truncated_log`."""
    from tensorboardX.proto.event_pb2 import Event

    for path in event_files(out_dir):
        with open(path, "rb") as handle:
            data = handle.read()
        kept = [raw for raw, payload in _records(data) if Event.FromString(payload).step <= last_step]
        text = b"".join(kept)
        if text != data:
            atomic_write_bytes(path, text)


def read_scalars(out_dir):
    """``{tag: [(step, value), ...]}`` of a run's event files, in file order (for tests and checks)."""
    from tensorboardX.proto.event_pb2 import Event

    scalars = {}
    for path in event_files(out_dir):
        with open(path, "rb") as handle:
            data = handle.read()
        for _, payload in _records(data):
            event = Event.FromString(payload)
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


class BoardLog:
    """``log.csv`` (a :class:`.runlog.RunLog`) and the TensorBoard scalars of the same rows.

    ``write(**row)`` writes the csv row and one scalar per value present (tags: :data:`TAGS`), at step
    ``row['iteration']``; ``images_per_second`` goes to TensorBoard only (log.csv has its own columns).
    ``resume_step``: the checkpoint's iteration when resuming (None for a fresh run, whose old event files
    in the directory, if any, are removed).
    """

    def __init__(self, log, out_dir, resume_step=None):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise RuntimeError(
                "--tensorboard needs the tensorboardX package: pip install tensorboardX (or train with "
                "--no-tensorboard)"
            ) from None
        self.log = log
        if resume_step is None:
            for path in event_files(out_dir):
                os.remove(path)
        else:
            truncate_events(out_dir, resume_step)
        start = 0 if resume_step is None else resume_step + 1
        # The session's first step in the name keeps two sessions started in the same second apart and
        # in order (tensorboardX names files by the second).
        self.writer = SummaryWriter(
            logdir=os.path.join(out_dir, TENSORBOARD_DIR),
            purge_step=start,
            flush_secs=10,
            filename_suffix=f".s{start:09d}",
        )

    @property
    def rows(self):
        return self.log.rows

    def write(self, images_per_second=None, **values):
        self.log.write(**values)
        step = int(values["iteration"])
        for name, value in dict(values, images_per_second=images_per_second).items():
            if name in TAGS and value is not None:
                self.writer.add_scalar(TAGS[name], float(value), step)

    def sync(self):
        """Before a checkpoint: the csv and the events logged so far are on disk."""
        self.log.sync()
        self.writer.flush()

    def close(self):
        self.log.close()
        self.writer.close()
