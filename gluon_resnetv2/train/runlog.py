"""What a run writes for people and tools: ``log.csv``, ``config.json`` and ``status.json``, and the one
reader of ``log.csv`` (:func:`read_log`, also for a file still being written; :mod:`gluon_resnetv2.plot` uses it).

``log.csv`` has the columns ``iteration,epoch,lr,train_loss,train_error,test_loss,test_error,time``
(:data:`LOG_COLUMNS`), and ``test_top5_error`` after them for data sets of 100 classes or more
(:func:`log_columns`):

- ``iteration``: updates made so far; ``epoch``: ``iteration / iterations_per_epoch`` (fractional);
- ``lr``: the learning rate of the last update;
- ``train_loss``, ``train_error``: averages over the images of the last ``--log-interval`` iterations
  (the paper's Figure 1 dashed lines), present on logging rows;
- ``test_loss``, ``test_error``: on the test set (solid lines), present on evaluation rows;
- ``time``: seconds of training since the run started (resumes continue the count);
- ``test_top5_error``: the fraction of test images whose label is not among the network's five highest
  scores (the paper's Table 5 top-5 error), on evaluation rows.

Errors are fractions in [0, 1]; a cell is empty where the value was not measured.  Rows are flushed as
they are written so that ``gluon-resnetv2 plot`` can draw a run that is still going.

``status.json`` says ``running`` (with ``pid``), ``finished`` (with the final test error, its top-5 error
``test_top5_error`` where log.csv has that column, and
``paper_fail``: the paper's Table 1 "fail", test error above 20 %), ``failed`` (the loss diverged: NaN or
inf; with ``reason`` and ``iteration``), ``error`` (an exception stopped the run: ``reason``; the last
checkpoint can be resumed) or ``interrupted`` (SIGINT / Ctrl-C or SIGTERM: a checkpoint was written after
the current iteration; resumable; with ``signal``).

``.lock`` holds the pid of the trainer that has the run directory: an exclusive ``fcntl.flock`` that the
kernel releases when that process ends, however it ends, so a second trainer is refused and a killed one
leaves no stale lock.
"""

import csv
import io
import json
import math
import os
import time

import numpy as np

from .. import cpu
from ..fileio import atomic_write_text, exclusive_lock

LOG_NAME = "log.csv"
CONFIG_NAME = "config.json"
STATUS_NAME = "status.json"
LOCK_NAME = ".lock"
LOG_COLUMNS = ("iteration", "epoch", "lr", "train_loss", "train_error", "test_loss", "test_error", "time")
TOP5_COLUMN = "test_top5_error"
#: Data sets with at least this many classes log the top-5 error too (ImageNet, CIFAR-100; Table 5).
TOP5_MIN_CLASSES = 100


def log_columns(num_classes):
    """The columns of the log.csv of a data set with ``num_classes`` classes."""
    return LOG_COLUMNS + ((TOP5_COLUMN,) if num_classes >= TOP5_MIN_CLASSES else ())


def _format(value):
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isinf(value) else f"{value:.8g}"
    return str(value)


class RunLog:
    """Append-only writer of ``log.csv``; counts its data rows (the checkpoint's log position)."""

    def __init__(self, out_dir, keep_rows=None, columns=LOG_COLUMNS):
        """Open ``<out_dir>/log.csv``: a fresh file, or (``keep_rows`` = n) the first n data rows of the old one."""
        self.path = os.path.join(out_dir, LOG_NAME)
        self.columns = tuple(columns)
        header = ",".join(self.columns) + "\n"
        if keep_rows is None:
            text = header
            self.rows = 0
        else:
            text, self.rows = truncated_log(self.path, keep_rows, self.columns)
        atomic_write_text(self.path, text)
        self._handle = open(self.path, "a", encoding="utf-8", newline="")

    def write(self, images_per_second=None, **values):
        """One row; ``images_per_second`` is not a column (TensorBoard logs it: :mod:`.tensorboard_log`)."""
        unknown = set(values) - set(self.columns)
        if unknown:
            raise ValueError(f"unknown log columns {sorted(unknown)}")
        line = ",".join(_format(values.get(name)) for name in self.columns) + "\n"
        self._handle.write(line)
        self._handle.flush()
        self.rows += 1

    def sync(self):
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self):
        if not self._handle.closed:
            self._handle.close()


def truncated_log(path, keep_rows, columns=LOG_COLUMNS):
    """``(text, rows)``: the header of ``columns`` and the first ``keep_rows`` data rows of ``path`` (a
    column the old file lacks is left empty in its rows)."""
    header = ",".join(columns) + "\n"
    if not os.path.isfile(path):
        if keep_rows:
            raise RuntimeError(f"cannot resume: {path} is missing but the checkpoint expects {keep_rows} rows")
        return header, 0
    with open(path, encoding="utf-8", newline="") as handle:
        lines = handle.read().splitlines(keepends=True)
    data = [line for line in lines[1:] if line.strip()]
    if len(data) < keep_rows:
        raise RuntimeError(f"cannot resume: {path} has {len(data)} rows but the checkpoint expects {keep_rows}")
    kept = [line if line.endswith("\n") else line + "\n" for line in data[:keep_rows]]
    old = [name.strip() for name in lines[0].strip().split(",")] if lines else list(columns)
    if old != list(columns):
        kept = [_rearranged(line, old, columns) for line in kept]
    return header + "".join(kept), keep_rows


def _rearranged(line, old, columns):
    cells = dict(zip(old, line.rstrip("\r\n").split(",")))
    return ",".join(cells.get(name, "") for name in columns) + "\n"


def _log_path(run_dir):
    """``(run_dir, path of its log.csv)``; ``run_dir`` may also name the log file itself."""
    run_dir = os.fspath(run_dir)
    if os.path.isfile(run_dir) and run_dir.endswith(".csv"):
        return os.path.dirname(run_dir) or ".", run_dir
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    path = os.path.join(run_dir, LOG_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {LOG_NAME} in run directory {run_dir} (expected {path})")
    return run_dir, path


def _cell(text):
    """A CSV cell as a float; an empty cell is None.  Raises ValueError on anything else."""
    text = text.strip()
    return None if text == "" else float(text)


def _log_table(path):
    """``(header, rows)`` of a log.csv that may still be written (see :func:`read_log`); a row is a list of
    floats, None for an empty cell; ``(None, [])`` while not even the header is complete."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            text = handle.read()
        binary = "\0" in text  # csv.reader cannot parse a NUL byte either
    except UnicodeDecodeError:
        binary = True
    if binary:
        raise ValueError(f"{path}: binary data, not a text CSV file; expected the log.csv of a training run")
    lines = text.splitlines()
    complete_last = text.endswith(("\n", "\r"))
    if not lines:
        return None, []
    header = [name.strip() for name in next(csv.reader([lines[0]]))]
    if len(lines) == 1 and not complete_last and ",".join(LOG_COLUMNS).startswith(lines[0].strip()):
        return None, []  # the header itself is still being written
    missing = [name for name in LOG_COLUMNS if name not in header]
    if missing:
        raise ValueError(
            f"{path}: wrong columns {header}; expected {','.join(LOG_COLUMNS)} (missing {', '.join(missing)})"
        )
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        is_last = number == len(lines)
        if not line.strip():
            continue
        cells = next(csv.reader([line]))
        if [cell.strip() for cell in cells] == header:
            continue
        try:
            if len(cells) != len(header):
                raise ValueError(f"{len(cells)} cells, expected {len(header)}")
            rows.append([_cell(cell) for cell in cells])
        except ValueError as err:
            if is_last:
                break  # a row still being written
            raise ValueError(f"{path}, line {number}: malformed row {line!r} ({err})") from None
    # An unterminated last line with every cell present can only be cut inside its final cell ("time"),
    # so the values that are plotted are complete and such a row is kept.
    return header, rows


def read_log(run_dir):
    """Read ``<run_dir>/log.csv`` into ``{column: numpy float array}``, one entry per row.

    All eight columns of :data:`LOG_COLUMNS` are returned (extra columns in the file are kept too) as
    float64 arrays of equal length; an empty cell is NaN.  Made for files that are still being written:

    - an empty file, or one whose header is not complete yet, gives arrays of length 0;
    - a last line that is incomplete (too few cells or a cell that does not parse) is ignored;
    - blank lines and repeated header lines (a resumed run) are skipped.

    Raises :class:`FileNotFoundError` naming the path when the directory or its log.csv is missing, and
    :class:`ValueError` naming the file when the header lacks a column or a row other than the last is
    malformed.  ``run_dir`` may also be the path of the CSV file itself.
    """
    _, path = _log_path(run_dir)
    header, rows = _log_table(path)
    if header is None:
        return {name: np.zeros(0) for name in LOG_COLUMNS}
    data = np.array(
        [[math.nan if value is None else value for value in row] for row in rows], dtype=np.float64
    ).reshape(len(rows), len(header))
    return {name: data[:, index] for index, name in enumerate(header)}


def read_log_rows(out_dir):
    """``log.csv`` as a list of dicts of floats (None for empty cells)."""
    _, path = _log_path(out_dir)
    header, rows = _log_table(path)
    return [dict(zip(header, row)) for row in rows]


def write_config(out_dir, config):
    """``<out_dir>/config.json`` of every setting (atomically), with ``omp_threads``: the OpenMP thread count
    this process's MXNet runs (not a setting: a resume on another machine may differ)."""

    buffer = io.StringIO()
    json.dump(dict(config.to_dict(), omp_threads=cpu.in_use()["threads"]), buffer, indent=2, sort_keys=True)
    buffer.write("\n")
    atomic_write_text(os.path.join(out_dir, CONFIG_NAME), buffer.getvalue())


def write_status(out_dir, status, **fields):
    """``<out_dir>/status.json`` = ``{"status": status, ...fields, "updated": unix time}`` (atomically)."""
    data = {"status": status}
    data.update({key: _jsonable(value) for key, value in fields.items()})
    data["updated"] = time.time()
    atomic_write_text(os.path.join(out_dir, STATUS_NAME), json.dumps(data, indent=2, sort_keys=True) + "\n")
    return data


def lock_run_dir(out_dir):
    """Take the exclusive lock on ``out_dir`` (see the module doc); returns the open lock file, which holds
    the lock until it is closed.  RuntimeError naming the holder's pid if another process has it."""
    return exclusive_lock(
        os.path.join(out_dir, LOCK_NAME),
        lambda pid: (
            f"{out_dir} is in use by another trainer (pid {pid or 'unknown'}); wait for it to finish or "
            "stop it (then --resume), or choose another --out"
        ),
    )


def read_status(out_dir):
    path = os.path.join(out_dir, STATUS_NAME)
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def format_duration(seconds):
    """``1h02m03s`` / ``2m03s`` (rounded to the second); None gives ``""``."""
    if seconds is None:
        return ""
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"
