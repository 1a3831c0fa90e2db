"""Writes a single-layer OCI image archive (for `ctr images import`) from local files: no registry, no daemon.

The real node needs a pause image and a small test image before anything can be pulled, and nothing can
be pulled here. Usage:
  python3 oci_image.py OUT.tar NAME --entrypoint /pause --file SRC:/DEST [--link TARGET:/DEST]...
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

EPOCH = 0  # fixed mtimes: the same inputs give the same digests, so a re-import is a no-op


def blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def add_dirs(layer: tarfile.TarFile, dest: str, made: set[str]) -> None:
    parts = Path(dest.lstrip("/")).parent.parts
    for i in range(1, len(parts) + 1):
        name = "/".join(parts[:i])
        if name not in made:
            made.add(name)
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
            layer.addfile(info)


def layer_tar(files: list[tuple[Path, str]], links: list[tuple[str, str]]) -> bytes:
    out = io.BytesIO()
    made: set[str] = set()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for src, dest in files:
            add_dirs(layer, dest, made)
            data = src.read_bytes()
            info = tarfile.TarInfo(dest.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), 0o755, EPOCH
            layer.addfile(info, io.BytesIO(data))
        for target, dest in links:
            add_dirs(layer, dest, made)
            info = tarfile.TarInfo(dest.lstrip("/"))
            info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, 0o777, EPOCH
            layer.addfile(info)
    return out.getvalue()


def write_archive(out: Path, name: str, entrypoint: list[str], layer: bytes) -> None:
    diff_id, _ = blob(layer)
    layer_digest, layer_gz = blob(gzip.compress(layer, mtime=EPOCH))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_digest, config_json = blob(json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": len(config_json),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": len(layer_gz),
            }
        ],
    }
    manifest_digest, manifest_json = blob(json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(manifest_json),
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name,
                },
            }
        ],
    }
    entries = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps(index).encode(),
    }
    blobs = ((layer_digest, layer_gz), (config_digest, config_json), (manifest_digest, manifest_json))
    for digest, data in blobs:
        entries["blobs/sha256/" + digest.removeprefix("sha256:")] = data
    with tarfile.open(out, "w") as archive:
        for path, data in entries.items():
            info = tarfile.TarInfo(path)
            info.size, info.mtime = len(data), EPOCH
            archive.addfile(info, io.BytesIO(data))


def pair(value: str) -> tuple[str, str]:
    left, sep, right = value.partition(":")
    if not sep or not right.startswith("/"):
        raise argparse.ArgumentTypeError(f"expected SRC:/DEST, got {value!r}")
    return left, right


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("name")
    parser.add_argument("--entrypoint", action="append", required=True)
    parser.add_argument("--file", type=pair, action="append", default=[])
    parser.add_argument("--link", type=pair, action="append", default=[])
    args = parser.parse_args()
    files = [(Path(src), dest) for src, dest in args.file]
    write_archive(args.out, args.name, args.entrypoint, layer_tar(files, args.link))


if __name__ == "__main__":
    main()
