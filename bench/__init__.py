"""The benchmark of the bridge against the homeserver's own ceiling (``python -m bench``).

It starts Synapse, the loopback network and the bridge (as its own process), runs the
stages (a)-(f) described in docs/performance.md and prints one JSON object.
"""
