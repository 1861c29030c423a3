"""Bot commands: a pure parser and the handlers."""
