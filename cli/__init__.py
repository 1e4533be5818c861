"""The `serfast` command line: a thin click front end over the `serfast` library."""
