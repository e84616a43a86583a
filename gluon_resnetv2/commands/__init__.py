"""One module per ``gluon-resnetv2`` sub-command; each exposes ``add_parser(subparsers)``."""
