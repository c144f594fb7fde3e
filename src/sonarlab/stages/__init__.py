"""One module per DVC stage, each a thin CLI (``main(argv=None)``) over pure functions."""
