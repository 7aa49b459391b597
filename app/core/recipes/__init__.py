"""Recipes: recorded edits as JSON, checked as untrusted input, replayed headless (paramedit apply)."""
