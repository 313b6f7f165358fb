"""zipserve: stream any selection of files as an archive, chunk by chunk from disk."""

__version__ = "0.1.0"
