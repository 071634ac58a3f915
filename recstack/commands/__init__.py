"""The command line's sub-commands, one module per stage; each entry point takes ``(argv, settings)``."""
