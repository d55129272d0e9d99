"""Accounting: the ledger of provider calls, their cost, budgets, and the usage report."""
