"""Releases: a snapshot as a Hugging Face dataset (parquet, a dataset card, a manifest), and checking files."""
