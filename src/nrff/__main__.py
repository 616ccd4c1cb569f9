"""``python -m nrff``: the same as the ``nrff`` command."""

from nrff.cli import main

main()
