"""Subcommands of ``webims``: every module here registers its own with
:func:`webims.cli.command` (see :mod:`webims.cli`). Keep these modules light and
import implementations inside the ``run`` functions."""
