"""Command-line interface; see `fpkit.cli.app`."""
