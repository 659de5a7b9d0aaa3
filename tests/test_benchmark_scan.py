"""benchmarks.scan: Mamba-2's SSD rows next to Mamba-1's scans (inputs, families, fastest per family)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import scan

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ssd_inputs_come_from_the_same_random_inputs():
  b, l, d, n, p = 2, 6, 8, 3, 4
  u, delta, A, B, C, D = inputs = scan.make_inputs((b, l, d, n), np.float32)
  x, dt, A_heads, B_groups, C_groups, D_heads = scan.make_ssd_inputs(inputs, p)
  assert (x.shape, dt.shape, A_heads.shape, B_groups.shape, C_groups.shape, D_heads.shape) == (
      (b, l, 2, p), (b, l, 2), (2,), (b, l, 1, n), (b, l, 1, n), (2,))
  np.testing.assert_array_equal(x, np.asarray(u).reshape(b, l, 2, p))
  np.testing.assert_array_equal(dt, np.asarray(delta)[:, :, ::p])
  np.testing.assert_array_equal(A_heads, np.asarray(A)[::p, 0])
  np.testing.assert_array_equal(D_heads, np.asarray(D)[::p])
  np.testing.assert_array_equal(B_groups[:, :, 0], B)
  np.testing.assert_array_equal(C_groups[:, :, 0], C)
  assert np.all(A_heads < 0) and np.all(dt > 0)
  with pytest.raises(ValueError, match="does not divide"):
    scan.make_ssd_inputs(inputs, 3)


def test_parse_ssd_methods():
  assert scan.parse_method("ssd:sequential") == ("ssd:sequential", {})
  assert scan.parse_method("pallas:block_d=32") == ("pallas", {"block_d": 32})
  for bad in ("ssd:auto", "ssd:pallas", "ssd:sequential:chunk_size=8"):
    with pytest.raises(SystemExit) as raised:
      scan.parse_method(bad)
    assert raised.value.code == 2


def test_fastest_method_per_family():
  records = [dict(shape="s", dtype="float32", mode="fwd", method=m, median_ms=t)
             for m, t in (("associative", 3.0), ("sequential", 2.0), ("ssd:associative", 0.5),
                          ("ssd:sequential", 1.0))]
  assert scan.fastest_methods(records) == {"selective_scan": {"s float32 fwd": "sequential"},
                                           "ssd": {"s float32 fwd": "ssd:associative"}}
  assert scan.fastest_methods(records[:2]) == {"selective_scan": {"s float32 fwd": "sequential"}}


def _run(tmp_path, *args):
  return subprocess.run(
      [sys.executable, "-m", "benchmarks.scan", "--dtypes=float32", "--repeats=2",
       "--copy_bytes=1048576", f"--out={tmp_path / 'scan.json'}", *args],
      cwd=REPO, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True, text=True,
      timeout=600)


def test_ssd_rows_in_the_report(tmp_path):
  result = _run(tmp_path, "--shapes=1x5x4x2", "--methods=associative,ssd:associative,ssd:sequential",
                "--ssd_head_dim=2", "--ssd_chunk_size=2")
  assert result.returncode == 0, result.stderr[-2000:]
  report = json.loads((tmp_path / "scan.json").read_text())
  rows = {(r["method"], r["mode"]): r for r in report["results"]}
  assert len(rows) == 6 and not any("error" in r for r in rows.values())
  for mode in ("fwd", "fwd_bwd"):
    ssd = rows["ssd:sequential", mode]
    assert ssd["family"] == "ssd" and rows["associative", mode]["family"] == "selective_scan"
    assert (ssd["ssd_heads"], ssd["ssd_head_dim"], ssd["ssd_groups"], ssd["ssd_chunk_size"]) == (2, 2, 1, 2)
    assert ssd["speedup_vs_associative"] > 0 and ssd["floor_bytes"] > 0
  assert set(report["fastest"]) == {"selective_scan", "ssd"}
  assert report["fastest"]["selective_scan"]["1x5x4x2 float32 fwd"] == "associative"
  markdown = (tmp_path / "scan.md").read_text()
  assert "speed-up vs Mamba-1 assoc" in markdown and "## Fastest ssd method per case" in markdown


def test_head_dim_must_divide_every_d(tmp_path):
  result = _run(tmp_path, "--shapes=1x5x4x2", "--methods=ssd:sequential")  # Default head_dim 64.
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith("--ssd_head_dim 64 does not divide d = 4")
