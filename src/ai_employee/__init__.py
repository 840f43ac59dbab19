"""AI Employee: an Obsidian vault as the desk of a trustworthy personal assistant."""

__version__ = "0.1.0"
