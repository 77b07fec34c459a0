"""helpers.leftovers: a snapshot taken before and after notices what was left behind."""

from __future__ import annotations

import socket

from helpers import leftovers, workspace


def test_a_new_scratch_folder_and_a_listening_socket_are_noticed_then_gone():
    before = leftovers.snapshot()
    folder = workspace.Scratch("leftover-test")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        left = leftovers.new_since(before)
        assert left["scratch folders"] == [folder.path.name]
        assert f"tcp port {server.getsockname()[1]}" in left["listening ports"]
    finally:
        folder.close()
        server.close()
    assert leftovers.new_since(before) == {}


def test_snapshot_always_covers_the_local_kinds():
    assert {"scratch folders", "mounts", "listening ports", "orphaned processes"} <= set(leftovers.snapshot().things)
