"""The executor: runs a plan's steps as MCP tool calls (dry-run by default), through the outbox."""
