"""The built-in filesystem storage backend and its plugin."""
