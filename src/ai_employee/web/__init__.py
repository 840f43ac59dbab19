"""The desk in a browser: a local web page over the same vault and the same decision API (`vault web`,
`vault start --web`). Server-rendered HTML with htmx, live through server-sent events; see docs/web.md."""
