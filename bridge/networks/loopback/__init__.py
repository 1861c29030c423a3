"""The loopback network: a simulated chat service for tests, benchmarks and the demo.

Run it with ``python -m bridge.networks.loopback.service``; see docs/loopback-api.md.
"""
