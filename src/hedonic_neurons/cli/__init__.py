"""The ``hedonic`` command line: thin wrappers, argv -> config -> pipeline function -> files."""
