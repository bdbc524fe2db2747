"""One module per ``roitrack`` sub-command: ``HELP``, ``configure(parser)``, ``run(args) -> int``."""
