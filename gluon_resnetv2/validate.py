"""Values are checked where they enter: one helper per kind of value, for options and keywords alike.

Every numeric command-line option takes its ``type=`` from here, and the Python API checks its keywords
with the same object, so that each range is written once::

    from gluon_resnetv2.validate import finite_float, name_list, nonneg_int, port, positive_int

    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--label-smoothing", type=finite_float(0, 1, high_open=True), default=0.0)
    parser.add_argument("--port", type=port)
    parser.add_argument("--rows", type=name_list)       # "a, b" -> ["a", "b"]; '' and ',' are refused

    LABEL_SMOOTHING = finite_float(0, 1, high_open=True)
    LABEL_SMOOTHING.check(value, "label_smoothing")     # Python keyword: ValueError naming it

On the command line a bad value (``nan``, ``inf``, out of range, not a number, an empty list) stops the
parser with one line, ``argument --label-smoothing: expected a finite number in [0, 1), got 'nan'``, and
exit status 2.  :meth:`Number.check` raises ``ValueError("label_smoothing=nan: expected ...")``.

``tests/test_validate.py`` walks every sub-command of :func:`gluon_resnetv2.cli.build_parser` and gives
``nan``, ``inf`` and :meth:`Number.outside` to every option whose ``type`` is a :class:`Number` (or a
:class:`ListOf` numbers); it fails on a plain ``type=int`` / ``type=float``, so a new option is covered
as soon as it is declared with one of these helpers.
"""

import argparse
import math
import numbers

__all__ = [
    "ListOf",
    "Number",
    "check_choice",
    "finite_float",
    "gpu_list",
    "int_range",
    "name_list",
    "nonneg_float",
    "nonneg_int",
    "port",
    "positive_float",
    "positive_int",
    "probability",
]


class Number:
    """A number of ``kind`` (int or float) in ``[low, high]`` (``low_open`` / ``high_open``: excluded;
    None: unbounded); never nan nor infinite.  Call it on a string (argparse ``type=``) or use
    :meth:`check` on a Python value."""

    def __init__(self, kind, low=None, high=None, low_open=False, high_open=False):
        if kind not in (int, float):
            raise TypeError("Number kind must be int or float")
        self.kind, self.low, self.high = kind, low, high
        self.low_open, self.high_open = low_open, high_open
        self.__name__ = kind.__name__  # argparse names the type in some messages

    def describe(self):
        """``"an integer >= 1"``, ``"a finite number in [0, 1)"``..."""
        what = "an integer" if self.kind is int else "a finite number"
        low, high = self.low, self.high
        if low is not None and high is not None:
            return f"{what} in {'(' if self.low_open else '['}{low:g}, {high:g}{')' if self.high_open else ']'}"
        if low is not None:
            return f"{what} {'>' if self.low_open else '>='} {low:g}"
        if high is not None:
            return f"{what} {'<' if self.high_open else '<='} {high:g}"
        return what

    def problem(self, value):
        """None when ``value`` (already a number) is acceptable, else what was expected."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return self.describe()
        if self.kind is int and not isinstance(value, numbers.Integral):
            return self.describe()
        if not math.isfinite(value):
            return self.describe()
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return self.describe()
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return self.describe()
        return None

    def __call__(self, text):
        try:
            value = self.kind(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text!r}") from None
        if self.problem(value):
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text!r}")
        return value

    def check(self, value, name):
        """Return ``value`` if acceptable (None passes: "the default"); ValueError naming ``name`` otherwise."""
        if value is not None and self.problem(value):
            raise ValueError(f"{name}={value!r}: expected {self.describe()}")
        return value

    def outside(self):
        """A value (as text) just outside the range, for tests; None when unbounded both ways."""
        step = 1 if self.kind is int else 0.5
        if self.low is not None:
            return str(self.kind(self.low) if self.low_open else self.kind(self.low - step))
        if self.high is not None:
            return str(self.kind(self.high) if self.high_open else self.kind(self.high + step))
        return None

    def __repr__(self):
        return f"<{self.describe()}>"


class ListOf:
    """A comma-separated list (argparse ``type=``): each item stripped and converted by ``item`` (a
    :class:`Number` or ``str``), each one of ``choices`` when given; an empty list is refused."""

    def __init__(self, item=str, choices=None, what="value"):
        self.item, self.choices, self.what = item, tuple(choices) if choices is not None else None, what
        self.__name__ = "list"

    def __call__(self, text):
        parts = [part.strip() for part in str(text).split(",")]
        if not any(parts):
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {self.what}s, got {text!r}")
        if not all(parts):
            raise argparse.ArgumentTypeError(f"empty item in {text!r}: expected {self.what}[,{self.what}...]")
        values = [self.item(part) for part in parts]
        bad = [v for v in values if self.choices is not None and v not in self.choices]
        if bad:
            raise argparse.ArgumentTypeError(
                f"unknown {self.what} {', '.join(map(str, bad))}; expected some of {', '.join(self.choices)}"
            )
        return values

    def check(self, values, name):
        """Python keyword form: ``values`` a non-empty list (or a comma-separated string); ValueError naming
        ``name`` otherwise.  Returns the list."""
        if values is None:
            return None
        if isinstance(values, str):
            try:
                return self(values)
            except argparse.ArgumentTypeError as err:
                raise ValueError(f"{name}: {err}") from None
        values = list(values)
        if not values:
            raise ValueError(f"{name}=[]: expected at least one {self.what}")
        for value in values:
            if isinstance(self.item, Number):
                self.item.check(value, name)
            elif self.choices is not None and value not in self.choices:
                raise ValueError(f"{name}: unknown {self.what} {value!r}; expected some of {', '.join(self.choices)}")
        return values


def int_range(low=None, high=None):
    """An integer in ``[low, high]``."""
    return Number(int, low, high)


def finite_float(low=None, high=None, low_open=False, high_open=False):
    """A finite float in the range (bounds None: unbounded; ``*_open``: the bound itself excluded)."""
    return Number(float, low, high, low_open, high_open)


def check_choice(value, choices, name):
    """Return ``value`` when it is one of ``choices`` (None passes); ValueError naming ``name`` otherwise."""
    if value is not None and (not isinstance(value, str) or value not in choices):
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(choices)}")
    return value


#: Counts, sizes, intervals: 1, 2, ...
positive_int = int_range(1)
#: Seeds, worker threads, warm-up lengths: 0, 1, ...
nonneg_int = int_range(0)
#: A TCP port.
port = int_range(1, 65535)
#: Rates, lengths in epochs, seconds: > 0 and finite.
positive_float = finite_float(0, low_open=True)
#: Weight decay, scales: >= 0 and finite.
nonneg_float = finite_float(0)
#: A drop probability: [0, 1).
probability = finite_float(0, 1, high_open=True)
#: ``--rows a,b`` / ``--models x,y``: a non-empty list of names.
name_list = ListOf(str, what="name")
#: ``--gpus 0,1``: a non-empty list of device indices.
gpu_list = ListOf(nonneg_int, what="GPU index")
