"""A non-editable install works outside the checkout: the built wheel runs train.predict from another folder.

The wheel is built from a copy of what the distribution holds (setup.cfg's packages) and installed with
--no-deps into a virtual environment of its own, whose dependencies are this interpreter's site-packages
added as plain path entries (their .pth files, and so the editable install of the checkout, are not
run). Built once per state of the sources: kept in pytest's cache under a digest of the files.
"""

import fcntl
import hashlib
import os
import pathlib
import shutil
import site
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
DISTRIBUTED = ("setup.cfg", "pyproject.toml", "README.md", "mamba_jax", "train", "configs")
MODEL = REPO / "models" / "sent140_mamba"


def _files(top: pathlib.Path) -> list[pathlib.Path]:
  if top.is_file():
    return [top]
  return sorted(p for p in top.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _sources_digest() -> str:
  digest = hashlib.sha256()
  for top in DISTRIBUTED:
    for path in _files(REPO / top):
      digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
  return digest.hexdigest()[:16]


def _run(args, **kwargs) -> subprocess.CompletedProcess:
  return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=True, **kwargs)


def _installed_wheel(cache: pathlib.Path) -> pathlib.Path:
  """The python of a virtual environment that holds this checkout's wheel (built when the sources changed)."""
  home = cache / _sources_digest()
  python = home / "venv" / "bin" / "python"
  if (home / "ready").exists():
    return python
  for earlier in cache.iterdir():  # Wheels of earlier sources.
    shutil.rmtree(earlier, ignore_errors=True)
  source = home / "source"
  source.mkdir(parents=True)
  for top in DISTRIBUTED:
    if (REPO / top).is_file():
      shutil.copy2(REPO / top, source / top)
    else:
      shutil.copytree(REPO / top, source / top, ignore=shutil.ignore_patterns("__pycache__"))
  _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", home / "dist", source])
  _run([sys.executable, "-m", "venv", "--without-pip", home / "venv"])
  purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
  with open(os.path.join(purelib, "dependencies.pth"), "w", encoding="utf-8") as f:
    f.write("\n".join(site.getsitepackages()) + "\n")  # Path lines: their own .pth files are not run.
  wheel = next((home / "dist").glob("mamba_jax-*.whl"))
  _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel])
  (home / "ready").touch()
  return python


def installed_wheel_python(request) -> pathlib.Path:
  """The python of the virtual environment with this checkout's wheel (``_installed_wheel``, in pytest's cache),
  one test process at a time (the xdist workers of a session share the cache)."""
  cache = pathlib.Path(request.config.cache.mkdir("installed_wheel"))
  with open(cache.parent / "installed_wheel.lock", "w", encoding="utf-8") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    return _installed_wheel(cache)


@pytest.mark.slow  # About 30 s on the first run (the build) under load.
def test_the_built_wheel_predicts_from_another_folder(request, tmp_path):
  python = installed_wheel_python(request)
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
  env["JAX_PLATFORMS"] = "cpu"
  where = _run([python, "-c", "import configs, mamba_jax, train.main; "
                "print('\\n'.join(m.__file__ for m in (configs, mamba_jax, train.main)))"], cwd=tmp_path, env=env)
  venv = str(python.parent.parent)
  assert all(path.startswith(venv) for path in where.stdout.split()), where.stdout  # Not the checkout's.
  result = subprocess.run([str(python), "-m", "train.predict", f"--model={MODEL}", "I love this"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  label, probability, text = result.stdout.strip().split("\t")
  assert label == "positive" and float(probability) > 0.5 and text == "I love this"
