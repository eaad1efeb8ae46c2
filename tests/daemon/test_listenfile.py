"""node.listenfile: the addresses a running node bound, written atomically with its pid."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from node.listenfile import (
    LISTEN_FILE,
    ListenInfo,
    read_listen_file,
    remove_listen_file,
    write_listen_file,
)

INFO = ListenInfo(pid=os.getpid(), peer_id="12D3KooWx",
                  p2p=("/ip4/127.0.0.1/tcp/40123/p2p/12D3KooWx",),
                  rpc=("http://127.0.0.1:41871",), metrics=("http://127.0.0.1:39455",))


def test_round_trip_and_pid_filter(tmp_path: Path) -> None:
    assert read_listen_file(tmp_path) is None
    path = write_listen_file(tmp_path, INFO)
    assert path == tmp_path / LISTEN_FILE
    assert read_listen_file(tmp_path) == INFO
    assert read_listen_file(tmp_path, pid=os.getpid()) == INFO
    assert read_listen_file(tmp_path, pid=os.getpid() + 1) is None  # another process's file
    assert [p.name for p in tmp_path.iterdir()] == [LISTEN_FILE]  # no temporary file left
    remove_listen_file(tmp_path)
    remove_listen_file(tmp_path)  # twice is fine
    assert read_listen_file(tmp_path) is None


@pytest.mark.parametrize("text", [
    "", "{", "[]", '{"pid": 1}',
    json.dumps({**INFO.to_json(), "rpc": []}),       # no RPC URL: not usable
    json.dumps({**INFO.to_json(), "pid": "x"}),
    json.dumps({**INFO.to_json(), "p2p": 5}),
])
def test_a_torn_or_foreign_file_reads_as_absent(tmp_path: Path, text: str) -> None:
    (tmp_path / LISTEN_FILE).write_text(text)
    assert read_listen_file(tmp_path) is None
