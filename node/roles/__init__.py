"""Role services: one sub-package per role (storage, omlizer, host, prover).

Each role is optional and switched on by its own config section; a validator
that runs no role never imports them (nor torch or transformers).
"""
