"""The jail a sandbox helper lives in: its own namespaces and a minimal read-only root.

Loaded by path by `helper.py` (stdlib only: the helper runs `python -I` and
must not import the package). Two steps, in two processes:

1. `enter_namespaces` (in the helper's launcher): unshare(2) the mount, network,
   IPC, UTS and PID namespaces, and a user namespace first when not root
   (inside a pod the helper is not root; the user namespace is what gives it
   the right to mount). Each namespace is asked for separately so that a
   refusal names the one refused.
2. `build_root` (in the first process of the new PID namespace, the helper
   proper, pid 1 there): a tmpfs root holding read-only bind mounts of only the
   interpreter, its standard library, the shared libraries it maps and the
   packages allowed for programs (every site-packages directory under them is
   covered by an empty read-only tmpfs); a private /proc of the new PID
   namespace; /dev with null, zero, full, random and urandom; a private tmpfs
   scratch (/tmp, or /var/tmp when the install lives under /tmp), the only
   writable place; then pivot_root into it. The data, the
   repository, home directories, /etc and other processes do not exist there.

Why unshare(2) through ctypes rather than the `unshare` binary: the helper has
to build the root itself anyway (mount(2), pivot_root(2)); asking for each
namespace in turn gives an exact refusal to report; and nothing outside the
interpreter has to be present in the sandbox image. (os.unshare is Python
3.12+; we support 3.11.)
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import glob
import os
import platform
import site
import sys
import sysconfig
from dataclasses import dataclass, field

_LIBC = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
# In the order they are asked for: the user namespace first, as it grants the right to the others.
NAMESPACES: dict[str, int] = {
    "user": CLONE_NEWUSER,
    "mnt": CLONE_NEWNS,
    "pid": CLONE_NEWPID,
    "net": CLONE_NEWNET,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
}

_FLAG_NAMES = {
    CLONE_NEWUSER: "CLONE_NEWUSER",
    CLONE_NEWNS: "CLONE_NEWNS",
    CLONE_NEWPID: "CLONE_NEWPID",
    CLONE_NEWNET: "CLONE_NEWNET",
    CLONE_NEWIPC: "CLONE_NEWIPC",
    CLONE_NEWUTS: "CLONE_NEWUTS",
}

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 0x400, 0x800, 0x200000
MNT_DETACH = 2
# statvfs f_flag bits -> the mount flags a bind remount must keep (the kernel locks them in a user namespace).
_KEPT_FLAGS = {
    os.ST_NOSUID: MS_NOSUID,
    os.ST_NODEV: MS_NODEV,
    os.ST_NOEXEC: MS_NOEXEC,
    os.ST_NOATIME: MS_NOATIME,
    os.ST_NODIRATIME: MS_NODIRATIME,
    os.ST_RELATIME: MS_RELATIME,
}
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
_DEVICES = ("null", "zero", "full", "random", "urandom")
# Where allowed packages appear inside the jail (on the programs' sys.path).
PACKAGES_DIR = "/opt/tarot-packages"
# The programs' writable scratch: /tmp, unless the interpreter (or a library or package it shows) lives
# under /tmp (a venv there): a tmpfs on /tmp would hide it, so the scratch goes to the next free place.
SCRATCH_CHOICES = ("/tmp", "/var/tmp", "/tarot-scratch")
# Bounds the inodes a run can make, and so the helper's work to remove them after the run.
SCRATCH_INODES = 16384


class JailError(OSError):
    """A step of building the jail failed; the message names the step."""


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise JailError(code, f"{what}: {os.strerror(code)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _LIBC.mount(
            source and source.encode(),
            target.encode(),
            fstype and fstype.encode(),
            flags,
            data and data.encode(),
        ),
        f"mount {source} on {target}" if source else f"mount {target}",
    )


# --- step 1: namespaces --------------------------------------------------------------------------


@dataclass
class Namespaces:
    entered: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def enter_namespaces(names: tuple[str, ...], *, as_root: bool, into: Namespaces | None = None) -> Namespaces:
    """unshare(2) each of `names` in turn (the user namespace only when not root); say which were refused.

    After a new PID namespace the caller must fork: the child is pid 1 there. The mount namespace is
    the child's own (entered after the fork), so that the launcher keeps the host's view and can
    remove the root's mount point when the helper is gone."""
    result = into or Namespaces()
    uid, gid = os.getuid(), os.getgid()
    for name, flag in NAMESPACES.items():
        if name not in names or (name == "user" and as_root):
            continue  # root needs no user namespace to mount; its children drop to an unprivileged uid
        if _LIBC.unshare(flag) != 0:
            code = ctypes.get_errno()
            result.refused[name] = f"unshare({_FLAG_NAMES[flag]}): {os.strerror(code)}"
            continue
        result.entered.append(name)
        if name == "user":
            try:
                _write("/proc/self/setgroups", "deny")
                _write("/proc/self/uid_map", f"{uid} {uid} 1")
                _write("/proc/self/gid_map", f"{gid} {gid} 1")
            except OSError as exc:
                result.entered.remove(name)
                result.refused[name] = f"uid/gid map: {exc.strerror or exc}"
    return result


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


# --- step 2: the root ----------------------------------------------------------------------------


@dataclass
class RootPlan:
    """What the jail's root shows, computed from the running interpreter before any namespace exists."""

    binds: list[str]  # host paths (files or directories), shown read-only at the same path
    hidden: list[str]  # directories under a bind covered by an empty read-only tmpfs (site-packages)
    symlinks: dict[str, str]  # top-level merged-/usr links (/lib -> usr/lib), recreated as they are
    packages: dict[str, str]  # name -> host path of an allowed package, shown under PACKAGES_DIR
    scratch_mb: int = 64
    scratch: str = SCRATCH_CHOICES[0]  # where the scratch tmpfs is mounted in the jail


def _mapped_library_dirs() -> set[str]:
    """Directories of every shared object this process maps (the interpreter, libc, libffi, ...)."""
    dirs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].startswith("/") and ".so" in parts[5]:
                dirs.add(os.path.dirname(os.path.realpath(parts[5].strip())))
    return dirs


def _package_dirs() -> set[str]:
    found = set(site.getsitepackages()) | {site.getusersitepackages()}
    found |= {sysconfig.get_path(name) for name in ("purelib", "platlib")}
    # In a virtual environment, the base interpreter's own site-packages too.
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}
    found |= {sysconfig.get_path(name, vars=base) for name in ("purelib", "platlib")}
    found |= {p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
    return {os.path.realpath(p) for p in found if p}


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def plan_root(packages: dict[str, str], scratch_mb: int = 64) -> RootPlan:
    stdlib = {os.path.realpath(sysconfig.get_path(name)) for name in ("stdlib", "platstdlib")}
    dynload = {os.path.join(p, "lib-dynload") for p in stdlib}
    wanted = {os.path.realpath(sys.executable)} | stdlib | dynload | _mapped_library_dirs()
    wanted |= {p for p in ("/etc/ld.so.cache",) if os.path.exists(p)}
    wanted = {p for p in wanted if os.path.exists(p)}
    # A path inside another bound path is already shown.
    binds = sorted(p for p in wanted if not any(o != p and _under(p, o) for o in wanted))
    hidden = sorted(
        p for p in _package_dirs() if os.path.isdir(p) and any(_under(p, b) and p != b for b in binds)
    )
    symlinks = {
        f"/{name}": os.readlink(f"/{name}")
        for name in ("lib", "lib32", "lib64", "libx32", "bin", "sbin")
        if os.path.islink(f"/{name}")
    }
    # exec() of the interpreter inside the jail needs the ELF loader by the path the binary names.
    for start in [sys.executable, *glob.glob("/lib*/ld-*.so*")]:
        symlinks.update(_symlinks_on_the_way(start))
    shown = [*binds, *symlinks, *packages.values()]
    scratch = next(c for c in SCRATCH_CHOICES if not any(_under(p, c) or _under(c, p) for p in shown))
    return RootPlan(binds, hidden, symlinks, dict(packages), scratch_mb, scratch)


def _symlinks_on_the_way(path: str, depth: int = 0) -> dict[str, str]:
    """Every symlink met while resolving `path` (link path -> its target)."""
    parts = path.strip("/").split("/")
    current = ""
    for index, part in enumerate(parts):
        current = f"{current}/{part}"
        if os.path.islink(current) and depth < 32:
            target = os.readlink(current)
            rest = "/".join(parts[index + 1 :])
            resolved = os.path.normpath(os.path.join(os.path.dirname(current), target, rest))
            return {current: target, **_symlinks_on_the_way(resolved, depth + 1)}
    return {}


def _bind_read_only(source: str, target: str) -> None:
    if os.path.isdir(source):
        os.makedirs(target, 0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
        if not os.path.exists(target):
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
    try:
        mount(source, target, None, MS_BIND)
    except JailError as exc:
        if exc.errno != errno.EINVAL:
            raise
        mount(source, target, None, MS_BIND | MS_REC)  # a mount with locked submounts binds only whole
    kept = os.statvfs(source).f_flag
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV
    flags |= sum(ms for st, ms in _KEPT_FLAGS.items() if kept & st)
    mount(None, target, None, flags)


def build_root(plan: RootPlan, newroot: str, *, scratch_owner: tuple[int, int] | None) -> dict[str, str]:
    """Build the root at `newroot` (a directory of the host) and pivot into it.

    Must run in a new mount namespace, in the new PID namespace (for /proc), with
    the right to mount. Returns how /proc turned out ({"proc": "private" | "none: why"})."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tarot-jail", newroot, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4m")
    for source in plan.binds:
        _bind_read_only(source, newroot + source)
    for hidden in plan.hidden:
        mount("tarot-hidden", newroot + hidden, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k")
    for link, destination in sorted(plan.symlinks.items()):
        if not os.path.lexists(newroot + link):
            os.makedirs(os.path.dirname(newroot + link), 0o755, exist_ok=True)
            os.symlink(destination, newroot + link)
    for source in plan.packages.values():
        target = os.path.join(newroot + PACKAGES_DIR, os.path.basename(source.rstrip("/")))
        _bind_read_only(source, target)
        libs = source.rstrip("/") + ".libs"  # wheels put vendored shared objects beside the package
        if os.path.isdir(libs):
            _bind_read_only(libs, target + ".libs")
    dev = newroot + "/dev"
    os.makedirs(dev, 0o755)
    mount("tarot-dev", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=4k")
    for device in _DEVICES:
        os.close(os.open(f"{dev}/{device}", os.O_CREAT | os.O_WRONLY, 0o666))
        mount(f"/dev/{device}", f"{dev}/{device}", None, MS_BIND)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
    ):
        os.symlink(target, f"{dev}/{name}")
    os.symlink("/proc/self/fd/2", f"{dev}/stderr")
    mount(None, dev, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC)
    report = {}
    os.makedirs(newroot + "/proc", 0o555)
    try:
        mount("proc", newroot + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        report["proc"] = "private"
    except JailError as exc:
        # A pod's /proc has masked paths, so the kernel refuses a fresh one; no /proc is more private still.
        report["proc"] = f"none: {exc.strerror}"
    scratch = newroot + plan.scratch
    os.makedirs(scratch, 0o755)  # plan_root chose a place no bind or link has created
    options = f"mode=0700,size={plan.scratch_mb}m,nr_inodes={SCRATCH_INODES}"
    mount("tarot-scratch", scratch, "tmpfs", MS_NOSUID | MS_NODEV, options)
    if scratch_owner is not None:
        os.chown(scratch, *scratch_owner)
    mount(None, newroot, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir(newroot)
    _check(_LIBC.syscall(_PIVOT_ROOT[platform.machine()], b".", b"."), "pivot_root")
    _check(_LIBC.umount2(b".", MNT_DETACH), "umount the old root")
    os.chdir("/")
    return report


def set_hostname(name: str) -> None:
    with contextlib.suppress(OSError):
        _check(_LIBC.sethostname(name.encode(), len(name)), "sethostname")
