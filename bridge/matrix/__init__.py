"""Everything Matrix-specific: appservice, intents, encryption, HTML."""
