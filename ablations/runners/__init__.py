"""Runners: a variant (or a run config) in, measured rows out."""
