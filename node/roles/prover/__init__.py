"""The prover role: probe deployments with dealt fingerprint keys, commit and open claims.

See docs/prover.md. ``service`` is the daemon service; ``decide`` the
claim rule (pure); ``claimtx`` the claim transactions and commitment;
``client`` the OpenAI API calls; ``store`` the role's database.
"""
