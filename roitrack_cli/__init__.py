"""The one command line, ``roitrack <command>``, dispatching into the project's packages."""
