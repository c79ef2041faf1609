"""Importing the formats teams already have (HH-RLHF, UltraFeedback, TRL, Argilla, Label Studio) as items and the
judgments of external annotators; see docs/import-formats.md."""
