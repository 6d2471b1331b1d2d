"""``cs3://`` (storage_bridge.cs3fs) against the real revad: fsspec's sync API (run in a thread,
as user code in a kernel would), paths, ranges, errors, the room lock."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import stat
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pytest

from devkit.revad.launcher import RevadHandle, home_path
from storage_bridge.cs3 import CS3Storage
from storage_bridge.cs3fs import CS3FileSystem, LockedError, here
from storage_bridge.cs3fs.paths import absolute, parent, strip
from tests.revad.sharing import Shared, Tokens

pytestmark = pytest.mark.revad


def fs_for(revad: RevadHandle, token: str, **kw: Any) -> CS3FileSystem:
    # skip_instance_cache: every test gets its own instance (fsspec caches by arguments)
    return CS3FileSystem(revad.gateway, token=token, skip_instance_cache=True, **kw)


def folder() -> str:
    return f"fs-{uuid.uuid4().hex[:8]}"


def test_paths_keep_their_form() -> None:
    assert strip("cs3://a/b/") == "a/b"
    assert strip("cs3:///users/x/../y") == "/users/y"
    assert strip("cs3://./d/../e.csv") == "./e.csv"
    assert strip("cs3://.") == "." and strip("cs3://") == ""
    assert parent("./a") == "." and parent("a") == "" and parent("/users") == "/"
    assert absolute("a", home="/users/me", cwd="/users/me/nb") == "/users/me/a"
    assert absolute("./a", home="/users/me", cwd="/users/me/nb") == "/users/me/nb/a"
    assert absolute("./../a", home="/users/me", cwd="/users/me/nb") == "/users/me/a"


async def test_entry_point_and_round_trip(revad: RevadHandle, cs3_tokens: Tokens) -> None:
    d = folder()

    def work() -> None:
        # no import of storage_bridge: fsspec finds cs3:// through the entry point
        cls = fsspec.get_filesystem_class("cs3")
        assert cls is CS3FileSystem
        opts = {"gateway": revad.gateway, "token": cs3_tokens.einstein}
        fs = fs_for(revad, cs3_tokens.einstein)
        fs.makedirs(f"{d}/sub", exist_ok=True)
        with fsspec.open(f"cs3://{d}/a.txt", "wb", **opts) as f:
            f.write(b"hello ")
            f.write(b"world")
        assert fs.cat_file(f"{d}/a.txt") == b"hello world"
        assert fs.cat_file(f"{d}/a.txt", start=6) == b"world"
        assert fs.cat_file(f"{d}/a.txt", start=1, end=4) == b"ell"
        assert fs.cat_file(f"{d}/a.txt", start=-5) == b"world"
        assert fs.cat_file(f"{d}/a.txt", start=50) == b""
        fs.pipe_file(f"{d}/sub/b.csv", b"x,y\n1,2\n3,4\n")
        # home-relative names, as in the file browser, in the form they were asked for
        assert fs.ls(d, detail=False) == [f"{d}/a.txt", f"{d}/sub"]
        absolute_dir = f"{home_path('einstein')}/{d}"
        assert fs.ls(f"cs3://{absolute_dir}", detail=False) == [
            f"{absolute_dir}/a.txt",
            f"{absolute_dir}/sub",
        ]
        assert fs.find(d) == [f"{d}/a.txt", f"{d}/sub/b.csv"]
        assert fs.glob(f"{d}/**/*.csv") == [f"{d}/sub/b.csv"]
        info = fs.info(f"{d}/a.txt")
        assert info["type"] == "file" and info["size"] == 11 and info["path"].endswith("a.txt")
        before = fs.checksum(f"{d}/a.txt")
        fs.pipe_file(f"{d}/a.txt", b"changed")
        assert fs.checksum(f"{d}/a.txt") != before
        df = pd.read_csv(f"cs3://{d}/sub/b.csv", storage_options=opts)
        assert df["y"].tolist() == [2, 4]
        fs.mv(f"{d}/sub/b.csv", f"{d}/c.csv")
        assert not fs.exists(f"{d}/sub/b.csv") and fs.cat(f"{d}/c.csv").startswith(b"x,y")
        with pytest.raises(FileNotFoundError):
            fs.cat_file(f"{d}/nope.txt")
        with pytest.raises(FileNotFoundError):
            fs.open(f"{d}/nope.txt", "rb")
        with pytest.raises(OSError, match="not empty"):
            fs.rm(d)
        fs.rm(d, recursive=True)
        assert not fs.exists(d)

    await asyncio.to_thread(work)


async def test_relative_to_cwd_put_get_and_here(
    revad: RevadHandle, cs3_tokens: Tokens, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = folder()
    cwd = f"{home_path('einstein')}/{d}"
    local = tmp_path / "in.bin"
    blob = bytes(range(256)) * 4096
    local.write_bytes(blob)
    monkeypatch.setenv("CS3_CWD", cwd)

    def work() -> None:
        fs = fs_for(revad, cs3_tokens.einstein, cwd=cwd)
        fs.makedirs(d)
        fs.put(str(local), "cs3://./in.bin")
        assert fs.ls(".", detail=False) == ["./in.bin"]
        assert fs.glob("./*.bin") == ["./in.bin"]
        assert here("in.bin") == f"cs3://{cwd}/in.bin"
        assert fs.cat_file(here("in.bin")) == blob
        fs.get("./in.bin", str(tmp_path / "out.bin"))
        assert (tmp_path / "out.bin").read_bytes() == blob
        # blocks through HTTP ranges: a small block size makes many
        with fs.open("./in.bin", "rb", block_size=100_000) as f:
            f.seek(500_000)
            assert f.read(10) == blob[500_000:500_010]
            f.seek(0)
            assert hashlib.sha256(f.read()).digest() == hashlib.sha256(blob).digest()
        fs.rm(d, recursive=True)

    await asyncio.to_thread(work)


async def test_shares_viewer_and_room_lock(
    revad: RevadHandle, cs3_storage: CS3Storage, cs3_tokens: Tokens, cs3_shared: Shared
) -> None:
    name = cs3_shared.owner.name
    marie_rel = "Shares/" + cs3_shared.marie_path.rsplit("/Shares/", 1)[1]
    richard_rel = "Shares/" + cs3_shared.richard_path.rsplit("/Shares/", 1)[1]
    assert marie_rel.endswith(name)

    def work_before_lock() -> None:
        marie = fs_for(revad, cs3_tokens.marie)
        richard = fs_for(revad, cs3_tokens.richard)
        assert name in {n.rsplit("/", 1)[-1] for n in marie.ls("Shares", detail=False)}
        assert b'"cells"' in marie.cat_file(marie_rel)
        assert b'"cells"' in richard.cat_file(richard_rel)
        with pytest.raises(PermissionError):
            richard.pipe_file(richard_rel, b"{}")
        with pytest.raises(PermissionError), richard.open(richard_rel, "wb") as f:
            f.write(b"{}")

    await asyncio.to_thread(work_before_lock)

    # a room holds the lock: without a hub the write is refused, clearly
    await cs3_storage.set_lock(
        cs3_tokens.einstein, cs3_shared.owner.path, lock_id="room-x", app_name="cs3collab",
        expires_in=60,
    )  # fmt: skip

    def work_locked() -> None:
        marie = fs_for(revad, cs3_tokens.marie, hub_url="")
        assert marie.info(marie_rel)["locked_by"] == "cs3collab"
        with pytest.raises(LockedError, match="locked by cs3collab: open in the notebook"):
            marie.pipe_file(marie_rel, b"{}")
        buf = io.BytesIO()
        buf.write(marie.cat_file(marie_rel))
        assert b'"cells"' in buf.getvalue()  # reads still work

    try:
        await asyncio.to_thread(work_locked)
    finally:
        await cs3_storage.unlock(
            cs3_tokens.einstein, cs3_shared.owner.path, lock_id="room-x", app_name="cs3collab"
        )


async def test_token_file_is_read_again(
    revad: RevadHandle, cs3_storage: CS3Storage, cs3_tokens: Tokens, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("not-a-valid-token")

    def work() -> None:
        fs = CS3FileSystem(revad.gateway, token_file=str(token_file), skip_instance_cache=True,
                           home=home_path("einstein"))  # fmt: skip
        with pytest.raises(PermissionError, match="token"):
            fs.ls("")
        token_file.write_text(cs3_tokens.einstein + "\n")
        assert isinstance(fs.ls("", detail=False), list)

    await asyncio.to_thread(work)


async def test_batch_job_gets_a_token_file(
    revad: RevadHandle, cs3_tokens: Tokens, tmp_path: Path
) -> None:
    """The README's recipe for a job outside Jupyter: login writes a 0600 token file, the job
    reads cs3:// with only CS3_GATEWAY and CS3_TOKEN_FILE set."""
    token_file = tmp_path / "cs3" / "token"
    login = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "storage_bridge.cs3fs", "login", "--gateway", revad.gateway,
        "--user", "einstein", "--token-file", str(token_file),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(login.communicate(b"relativity\n"), 60)
    assert login.returncode == 0 and out.decode().strip() == str(token_file)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    name = f"{folder()}.csv"
    fs = fs_for(revad, cs3_tokens.einstein)
    await asyncio.to_thread(fs.pipe_file, name, b"a,b\n1,2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CS3_")} | {
        "CS3_GATEWAY": revad.gateway,
        "CS3_TOKEN_FILE": str(token_file),
    }
    job = await asyncio.create_subprocess_exec(
        sys.executable, "-c", f"import pandas as pd; print(pd.read_csv('cs3://{name}').b.sum())",
        env=env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(job.communicate(), 60)
    assert job.returncode == 0 and out.decode().strip() == "2"
    await asyncio.to_thread(fs.rm, name)


async def test_kernel_reads_racing_writes_of_the_same_file_all_succeed(
    revad: RevadHandle, cs3_tokens: Tokens
) -> None:
    # as tests/storage_bridge/test_cs3.py: the data server's 500 on a read racing a write is
    # retried by cs3:// too (cat_file and get_file), so a kernel never sees it
    d = folder()
    versions = [b"x,y\n%d,0\n" % i + b"0,0\n" * 5_000 for i in range(60)]

    def work() -> None:
        writer, reader = fs_for(revad, cs3_tokens.einstein), fs_for(revad, cs3_tokens.einstein)
        writer.makedirs(d, exist_ok=True)
        writer.pipe_file(f"{d}/raced.csv", versions[0])
        done = threading.Event()

        def write_all() -> None:
            try:
                for data in versions[1:]:
                    writer.pipe_file(f"{d}/raced.csv", data)
            finally:
                done.set()

        thread = threading.Thread(target=write_all)
        thread.start()
        reads = 0
        try:
            while not done.is_set():
                assert reader.cat_file(f"{d}/raced.csv") in versions
                reads += 1
        finally:
            thread.join()
        assert reads >= 20
        writer.rm(d, recursive=True)

    await asyncio.to_thread(work)
