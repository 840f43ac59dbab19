"""Gmail: new mail becomes notes in `Inbox/`, and approved replies go out in the same thread.

`auth` keeps the OAuth token (outside the vault, mode 0600); `client` is the Gmail API with its errors
sorted into what to do about them; `message` turns one message into a note and its attachments; `noise`
holds the rules that skip mail or file it without a reply; `sync` is the engine's Gmail service. The
`gmail` MCP server (`ai_employee.mcp_servers.gmail_server`) is the tool side: drafts, replies, labels.
"""
