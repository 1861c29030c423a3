"""The Signal network, through the signal-cli daemon's JSON-RPC interface.

The bridge links each user's Signal account as a secondary device (like Signal Desktop);
the daemon holds the keys and talks to Signal's servers. See docs/signal.md.
"""
