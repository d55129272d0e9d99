"""Where media files live: one interface (base.py), a local store (local.py) and an s3 store (s3.py, with its spool);
`[media] store` chooses (configured.py). Only media/registry.py uses them."""
