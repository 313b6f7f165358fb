"""A local folder as a source: source.Local, opened by plugin.py."""
