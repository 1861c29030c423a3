"""The WhatsApp network: multi-device puppeting through neonize (whatsmeow's compiled library).

Install with the ``whatsapp`` extra; see docs/whatsapp.md for setup, config and privacy notes.
"""
