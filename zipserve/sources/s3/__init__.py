"""An S3 prefix as a source: source.S3Source, declared in options.py, opened by plugin.py."""
