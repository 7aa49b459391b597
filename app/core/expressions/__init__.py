"""Untrusted text made safe: expressions in w and torch (an allowlist interpreter), numpy-style index text, user regular expressions with a time budget."""
