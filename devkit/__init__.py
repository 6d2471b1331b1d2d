"""Helpers shared by the tests and the benchmarks (never shipped in the wheel).

bench/ may import devkit/ and tests/ may import devkit/; bench/ never imports tests/ and devkit/
imports neither (tests/test_architecture.py checks both). What is here:

- ``ports``: free loopback TCP ports;
- ``polling``: waiting for a condition with a deadline (subprocess readiness, asyncio events);
- ``hubproc``: the real hub (``cs3collab serve``) as a subprocess, and notebook files;
- ``yclient``: a minimal Y websocket client speaking the hub's protocol;
- ``revad``: a real revad (Reva v2.27.7) on loopback ports, with its config templates.
"""
