"""Credits: grants, their burn-down, balances, and reservations that hold credits before use."""
