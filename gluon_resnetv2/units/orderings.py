"""Fig. 4: where BN and ReLU sit in a residual unit ("activation" variants).

A unit is ``x -> preact -> branch (convs with BN-ReLU between them, then tail) ; + shortcut ; post``.
Every ordering of Fig. 4 is the same three tuples of operations (``'bn'``, ``'relu'``):

=================== =============================== ======== ======= ========
name                Fig. 4 unit                     preact   tail    post
=================== =============================== ======== ======= ========
original            W-BN-ReLU-W-BN, +, ReLU          -        BN      ReLU
bn_after_add        W-BN-ReLU-W, +, BN-ReLU          -        -       BN-ReLU
relu_before_add     W-BN-ReLU-W-BN-ReLU, +           -        BN-ReLU -
relu_preact         ReLU-W-BN-ReLU-W-BN, +           ReLU     BN      -
full_preact         BN-ReLU-W-BN-ReLU-W, +           BN-ReLU  -       -
=================== =============================== ======== ======= ========

The operations are data, chosen when a unit is built; ``hybrid_forward`` never branches on them.
"""

from dataclasses import dataclass

from mxnet.gluon import nn


@dataclass(frozen=True)
class Ordering:
    """One column of Fig. 4: the operations before the branch, after its last conv, and after the merge."""

    name: str
    figure: str
    preact: tuple
    tail: tuple
    post: tuple

    @property
    def is_preactivation(self):
        """True for Fig. 4(d, e): the unit activates its input itself, so the net needs no activation
        after conv1 (CIFAR) and one extra activation after the last unit (Sec. 4.1)."""
        return bool(self.preact)


ACTIVATIONS = {
    "original": Ordering("original", "Fig. 4(a)", (), ("bn",), ("relu",)),
    "bn_after_add": Ordering("bn_after_add", "Fig. 4(b)", (), (), ("bn", "relu")),
    "relu_before_add": Ordering("relu_before_add", "Fig. 4(c)", (), ("bn", "relu"), ()),
    "relu_preact": Ordering("relu_preact", "Fig. 4(d)", ("relu",), ("bn",), ()),
    "full_preact": Ordering("full_preact", "Fig. 4(e)", ("bn", "relu"), (), ()),
}


def get_ordering(activation):
    """The :class:`Ordering` named ``activation`` (a name or an Ordering); ValueError names the valid ones."""
    if isinstance(activation, Ordering):
        return activation
    try:
        return ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(
            f"activation={activation!r} is not a Fig. 4 variant; expected one of {', '.join(ACTIVATIONS)}"
        ) from None


def make_ops(ops, norm_layer=nn.BatchNorm, norm_kwargs=None, prefix=None):
    """A HybridSequential applying ``ops`` (a tuple of 'bn'/'relu') in order; empty means identity."""
    seq = nn.HybridSequential(prefix=prefix)
    with seq.name_scope():
        for op in ops:
            if op == "bn":
                seq.add(norm_layer(**(norm_kwargs or {})))
            elif op == "relu":
                seq.add(nn.Activation("relu"))
            else:  # pragma: no cover - the table above is the only source of ops
                raise ValueError(f"unknown operation {op!r}")
    return seq
