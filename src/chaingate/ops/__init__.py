"""Ops actions: the one implementation behind the API, the console and the command line."""
