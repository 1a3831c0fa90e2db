"""Curriculum policies as data (policy), the portfolio of named ones, and choosing one (selection)."""
