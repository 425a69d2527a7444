"""The `ugn` command: one thin module per command group; heavy imports happen inside the commands."""
