"""Tests of the storage backends: one contract suite for every store, plus SQLite specifics."""
