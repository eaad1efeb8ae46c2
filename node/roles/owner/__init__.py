"""The model owner's permission service: sells permission strings for fee vouchers."""
