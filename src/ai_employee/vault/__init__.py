"""The vault: its folder layout, atomic file operations and the formats of action files and plan notes."""
