"""The built-in MCP servers that approved plans call: `vault` (notes) and `email` (send and draft)."""
