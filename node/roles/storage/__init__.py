"""Storage role: content-addressed, chunked, optionally encrypted blobs.

``manifest`` defines what a blob id commits to, ``store`` keeps chunks on disk
with an LMDB index, ``archive`` turns a directory into one deterministic blob,
``crypto`` seals a blob to its recipients. See docs/protocol.md, "Blobs".
"""
