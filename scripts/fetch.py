#!/usr/bin/env python3
"""Fetch the files a manifest lists into a folder, verifying sha256.

Order of sources per file: an existing verified copy; the copy committed in
this repository (`committed`, for weights trained here); the local mirror
(../shared/<kind>/<file>, symlinked, never copied into git); `url`; a Debian
package (`debian = "pkg:/path/in/package"`). A file no source can provide is
reported by name; `--required` names make that fatal.
"""
import argparse, hashlib, os, shutil, subprocess, sys, tempfile, tomllib, urllib.request


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def from_debian(spec, dest):
    pkg, inner = spec.split(":", 1)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", pkg], cwd=tmp, check=True, capture_output=True)
        deb = next(f for f in os.listdir(tmp) if f.endswith(".deb"))
        subprocess.run(["dpkg-deb", "-x", deb, "x"], cwd=tmp, check=True)
        src = os.path.join(tmp, "x", inner.lstrip("/"))
        if not os.path.exists(src) and os.path.exists(src + ".gz"):
            import gzip
            with gzip.open(src + ".gz", "rb") as i, open(dest, "wb") as o:
                shutil.copyfileobj(i, o)
        else:
            shutil.copyfile(src, dest)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--dest", required=True)
    ap.add_argument("--mirror", help="folder mirroring the files (e.g. ../shared/models)")
    ap.add_argument("--required", nargs="*", default=[], help="files whose absence is fatal")
    a = ap.parse_args()
    data = tomllib.load(open(a.manifest, "rb"))
    entries = data.get("model") or data.get("file") or []
    missing = []
    for e in entries:
        name, want = e["file"], e["sha256"]
        dest = os.path.join(a.dest, name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.exists(dest) and sha256(dest) == want:
            print(f"  ok       {name}")
            continue
        if os.path.lexists(dest):
            os.remove(dest)
        # Weights this project trained itself are committed beside their model card.
        committed = e.get("committed") and os.path.join(os.path.dirname(os.path.abspath(a.manifest)), e["committed"])
        if committed and os.path.exists(committed) and sha256(committed) == want:
            os.symlink(os.path.abspath(committed), dest)
            print(f"  repo     {name}")
            continue
        mirrored = a.mirror and os.path.join(a.mirror, name)
        if mirrored and os.path.exists(mirrored) and sha256(mirrored) == want:
            os.symlink(os.path.abspath(mirrored), dest)
            print(f"  mirror   {name}")
            continue
        try:
            if e.get("url"):
                print(f"  download {name} <- {e['url']}")
                urllib.request.urlretrieve(e["url"], dest)
            elif e.get("debian"):
                print(f"  debian   {name} <- {e['debian']}")
                from_debian(e["debian"], dest)
            else:
                raise RuntimeError("no mirror copy and no public source (mirror only)")
            got = sha256(dest)
            if got != want:
                os.remove(dest)
                raise RuntimeError(f"sha256 {got} != manifest {want}")
        except Exception as err:  # report every file, then decide
            print(f"  MISSING  {name}: {err}", file=sys.stderr)
            missing.append(name)
    fatal = [m for m in missing if m in a.required]
    if fatal:
        sys.exit(f"required files missing: {', '.join(fatal)}")


if __name__ == "__main__":
    main()
