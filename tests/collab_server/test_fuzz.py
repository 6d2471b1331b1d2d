"""A frame fuzzer against a real hub (issue 11), bounded to fit CI.

Hypothesis writes frames that look like what a Yjs client sends, and then breaks them:
lib0 messages with wrong types, steps and lengths; real Yjs updates with bytes flipped,
cut or appended; awareness updates with clock 0, ``null`` states, unknown and foreign ids,
huge states, broken JSON; raw messages and JSON commands. Each example uses a socket of its
own. The property: the socket is either still open or closed with one of the hub's codes,
never a 1006/1011, and a witness client in the same room keeps co-editing throughout.
``CS3COLLAB_FUZZ_EXAMPLES`` raises the budget for a long run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text, write_var_uint

from devkit.hubproc import HubProcess, notebook, write_notebook
from devkit.yclient import YClient

EXAMPLES = int(os.environ.get("CS3COLLAB_FUZZ_EXAMPLES", "300"))
ALLOWED = {1000, 1003, 1009, 4400, 4413, 4429}


def _update_samples() -> list[bytes]:
    doc: Doc = Doc()
    text = doc.get("t", type=Text)
    samples = []
    for word in ("hello", " world", "!"):
        before = doc.get_state()
        text += word
        samples.append(doc.get_update(before))
    del text[0:3]
    samples.append(doc.get_update())
    return samples


UPDATES = _update_samples()


def _with_length(body: bytes) -> bytes:
    return write_var_uint(len(body)) + body


def _awareness_payload(entries: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(write_var_uint(len(entries)))
    for client, clock, state in entries:
        out += write_var_uint(client) + write_var_uint(clock) + _with_length(state)
    return bytes(out)


states = st.one_of(
    st.just(b"{}"),
    st.just(b"null"),
    st.just(b'{"user":{"name":"fuzz"},"autosave":true}'),
    st.binary(max_size=40),  # not JSON, not UTF-8
    st.integers(1, 200_000).map(lambda n: b'{"x":"' + b"y" * n + b'"}'),  # huge
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),  # deep
)
client_ids = st.one_of(st.integers(0, 2**53), st.sampled_from([0, 1, 123456]))
awareness = st.lists(
    st.tuples(client_ids, st.sampled_from([0, 1, 2, 2**32]), states), max_size=6
).map(_awareness_payload)


@st.composite
def corrupt_update(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(UPDATES)))
    for _ in range(draw(st.integers(0, 4))):
        if data and draw(st.booleans()):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        else:
            data += draw(st.binary(max_size=8))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut] if draw(st.booleans()) else data)


def _json_command(body: str) -> bytes:
    return bytes([2]) + _with_length(body.encode())


frames = st.one_of(
    # sync: step 0/1/2 and unknown steps, with a real, a corrupt or a random payload
    st.tuples(
        st.sampled_from([0, 1, 2, 3, 255]),
        st.one_of(corrupt_update(), st.sampled_from(UPDATES), st.binary(max_size=64)),
        st.booleans(),
    ).map(lambda t: bytes([0, t[0]]) + (_with_length(t[1]) if t[2] else t[1])),
    # awareness, well-formed framing with hostile entries, or broken framing
    awareness.map(lambda p: b"\x01" + _with_length(p)),
    st.binary(max_size=32).map(lambda b: b"\x01" + b),
    # raw: save requests and JSON commands, sane and not
    st.integers(0, 2**40).map(lambda i: bytes([2]) + _with_length(b"save") + write_var_uint(i)),
    st.sampled_from(['{"type":"merge_back"}', '{"type":"nope"}', "[1,2]", "{", '{"type":7}']).map(
        _json_command
    ),
    st.integers(1, 5000).map(lambda n: _json_command("{" + '"a":[' * n + "]" * n + "}")),
    # query awareness, unknown message types, empty and tiny frames
    st.just(b"\x03"),
    st.binary(max_size=16),
)


@pytest.fixture(scope="module")
def fuzz_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HubProcess, str]]:
    base = tmp_path_factory.mktemp("fuzz")
    root = base / "root"
    write_notebook(root / "nb.ipynb", notebook("witness"))
    hub = HubProcess(root=root, data_dir=base / "data").start()
    try:
        yield hub, hub.room_url(hub.open("nb.ipynb"))
    finally:
        hub.stop()


async def _send(url: str, batch: list[bytes]) -> int | None:
    """Send a batch on a new socket; the close code, or None if it stayed open."""
    async with websockets.connect(url, max_size=2**26) as ws:
        try:
            for frame in batch:
                await ws.send(frame)
            # the hub answers what it will answer; a close arrives within this
            async with asyncio.timeout(0.3):
                async for _ in ws:
                    pass
        except TimeoutError:
            return None
        except websockets.ConnectionClosed:
            pass
    return ws.close_code


async def _room_works(url: str, word: str) -> None:
    writer = await YClient(url).connect(timeout=5)
    writer.append_source(0, word)
    reader = await YClient(url).connect(timeout=5)
    await reader.wait_for(lambda: word in reader.sources()[0], timeout=5)
    await writer.close()
    await reader.close()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples every CI run: a failure reproduces
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(frames, min_size=1, max_size=5))
def test_fuzzed_frames_cost_only_their_socket(
    fuzz_hub: tuple[HubProcess, str], batch: list[bytes]
) -> None:
    _, url = fuzz_hub
    code = asyncio.run(_send(url, batch))
    assert code is None or code in ALLOWED, f"closed {code} for {[f[:40] for f in batch]}"


def test_after_the_fuzzing_the_room_and_hub_are_healthy(fuzz_hub: tuple[HubProcess, str]) -> None:
    hub, url = fuzz_hub
    asyncio.run(_room_works(url, " still-alive"))
    metrics = httpx.get(f"{hub.http_url}/metrics").text
    failures = [
        line for line in metrics.splitlines() if line.startswith("cs3collab_task_failures_total")
    ]
    assert all(line.endswith(" 0.0") for line in failures), failures
    assert "Traceback" not in hub.logs(), hub.logs()[-3000:]
