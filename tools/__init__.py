"""Developer tools that are run by hand, not shipped with the gateway (`python -m tools.<name>`)."""
