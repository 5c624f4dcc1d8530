"""``python -m invoicer``: the same as the ``invoicer`` command."""

from invoicer.cli import main

main()
