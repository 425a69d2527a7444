"""`python -m unifiedgender` is the same as `ugn`."""

from unifiedgender.cli.app import main

main()
