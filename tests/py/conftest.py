"""Shared fixtures for the Python cross-checks: where the built pe-sentinel binary is."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _binary() -> pathlib.Path:
    env = os.environ.get("PE_SENTINEL_BIN")
    if env:
        return pathlib.Path(env)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "debug" / "pe-sentinel"


@pytest.fixture(scope="session")
def pe_sentinel_bin() -> pathlib.Path:
    b = _binary()
    if not b.exists():
        pytest.fail(f"pe-sentinel binary not found at {b}: run `cargo build` first or set PE_SENTINEL_BIN")
    return b
