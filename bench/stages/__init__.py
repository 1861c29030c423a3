"""One module per benchmark stage; each returns a JSON-ready dict (or None with a reason)."""
