"""A PEP 517 build backend in the standard library alone, so that

    pip install --no-build-isolation python/

works with no package index and no setuptools or wheel installed (these machines reach Debian's
packages and npm, not PyPI). It builds a pure-Python wheel of portico_sdk/, an sdist, and an
editable wheel (PEP 660) for `pip install -e`."""
from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
NAME = PROJECT["name"].replace("-", "_")
VERSION = PROJECT["version"]
DIST_INFO = f"{NAME}-{VERSION}.dist-info"
TAG = "py3-none-any"


def _metadata() -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {PROJECT['name']}", f"Version: {VERSION}",
             f"Summary: {PROJECT.get('description', '')}", f"Requires-Python: {PROJECT.get('requires-python', '>=3.11')}",
             "License: MIT"]
    readme = ROOT / "README.md"
    if readme.exists():
        lines += ["Description-Content-Type: text/markdown", "", readme.read_text("utf-8")]
    return "\n".join(lines) + "\n"


def _wheel_file() -> str:
    return f"Wheel-Version: 1.0\nGenerator: portico_build\nRoot-Is-Purelib: true\nTag: {TAG}\n"


def _sources() -> list[Path]:
    return sorted(p for p in (ROOT / "portico_sdk").rglob("*.py") if "__pycache__" not in p.parts)


def _write_wheel(path: Path, files: dict[str, bytes]) -> None:
    files = {**files, f"{DIST_INFO}/METADATA": _metadata().encode(), f"{DIST_INFO}/WHEEL": _wheel_file().encode()}
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
        record.append(f"{DIST_INFO}/RECORD,,")
        zf.writestr(f"{DIST_INFO}/RECORD", "\n".join(record) + "\n")


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    target = Path(metadata_directory) / DIST_INFO
    target.mkdir(parents=True, exist_ok=True)
    (target / "METADATA").write_text(_metadata(), "utf-8")
    (target / "WHEEL").write_text(_wheel_file(), "utf-8")
    return DIST_INFO


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = f"{NAME}-{VERSION}-{TAG}.whl"
    _write_wheel(Path(wheel_directory) / name, {p.relative_to(ROOT).as_posix(): p.read_bytes() for p in _sources()})
    return name


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    name = f"{NAME}-{VERSION}-{TAG}.whl"
    _write_wheel(Path(wheel_directory) / name, {f"_{NAME}_editable.pth": f"{ROOT}\n".encode()})
    return name


def build_sdist(sdist_directory, config_settings=None):
    base = f"{NAME}-{VERSION}"
    name = f"{base}.tar.gz"
    with tarfile.open(Path(sdist_directory) / name, "w:gz") as tf:
        for p in [ROOT / "pyproject.toml", ROOT / "README.md", *sorted((ROOT / "backend").glob("*.py")), *_sources()]:
            tf.add(p, arcname=f"{base}/{p.relative_to(ROOT).as_posix()}")
        info = f"Metadata-Version: 2.1\nName: {PROJECT['name']}\nVersion: {VERSION}\n".encode()
        ti = tarfile.TarInfo(f"{base}/PKG-INFO")
        ti.size = len(info)
        tf.addfile(ti, io.BytesIO(info))
    return name
