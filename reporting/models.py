"""Firms' investment-banking practice-quality self-evaluations (not yet built)."""
