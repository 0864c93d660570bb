"""Corpus builders: synthetic speech corpora and readers of manually downloaded releases, each writing a manifest for ``hmaf.prepare``."""
