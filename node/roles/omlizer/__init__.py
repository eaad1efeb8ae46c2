"""The OMLizer role: fingerprint a model for each host that requests access, commit, reveal.

See docs/omlizer.md for the job life cycle, the exactly-once argument and
the prover key hand-off. torch is imported only by :mod:`.worker`, which
runs in its own process.
"""
