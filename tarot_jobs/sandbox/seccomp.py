"""A tiny seccomp-BPF filter that takes the network and other processes away from a child.

Loaded by the helper (stdlib only, no package imports: the helper runs with
`python -I`). Installing a filter needs no privilege (only no_new_privs), so
this works as root here and as a non-root user in a pod, where unsharing a
network namespace may be forbidden.

What the filter denies with EPERM:
- `socket()` for every address family except AF_UNIX: no TCP/UDP/raw/netlink,
  so a program cannot reach the network or local services;
- `io_uring_*` (io_uring can open sockets without calling socket());
- signalling any process but the child itself or its own process group
  (kill/tgkill/tkill/rt_sig*queueinfo/pidfd_*), so it cannot kill its helper,
  the service or its neighbours even when they share a uid;
- ptrace and process_vm_readv/writev (reading or writing other processes);
- making another process the target of a file's I/O signals: fcntl F_SETOWN,
  F_SETOWN_EX, F_SETSIG and ioctl FIOSETOWN/SIOCSPGRP (the kernel checks only
  uids on that route, not what kill() may reach);
- new namespaces: unshare and setns always, clone with any CLONE_NEW* flag,
  and clone3 (its flags are in memory a filter cannot read) with ENOSYS, so
  that the C library falls back to clone for threads and processes;
- with `ipc=False` (where the helper cannot bound and clear the IPC namespace
  itself): creating System V shared memory, semaphores and message queues and
  opening POSIX message queues (shmget, semget, msgget, mq_open), which would
  otherwise hold memory beyond the run's limits or outlive the run.
A syscall from a foreign architecture (x32, i386 on x86_64) kills the process,
so the filter cannot be sidestepped through another syscall table.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

# BPF opcodes (linux/filter.h, linux/bpf_common.h).
_LD_W_ABS = 0x20
_JMP_JEQ_K = 0x15
_JMP_JGE_K = 0x35
_JMP_JSET_K = 0x45
_RET_K = 0x06

_SECCOMP_RET_KILL_PROCESS = 0x80000000
_SECCOMP_RET_ERRNO = 0x00050000
_SECCOMP_RET_ALLOW = 0x7FFF0000
_DENY = _SECCOMP_RET_ERRNO | errno.EPERM
_NO_SUCH_CALL = _SECCOMP_RET_ERRNO | errno.ENOSYS

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2

_OFFSET_NR = 0
_OFFSET_ARCH = 4
_AF_UNIX = 1
# fcntl commands and ioctl requests that set a file's signal owner or its signal (fcntl.h, sockios.h).
_F_SETOWN, _F_SETSIG, _F_SETOWN_EX = 8, 10, 15
_FIOSETOWN, _SIOCSPGRP = 0x8901, 0x8902
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET (CLONE_NEWTIME, 0x80, is the exit
# signal's byte for clone(); only unshare and clone3 take it, and both are denied whole).
_CLONE_NEW_ANY = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000


def _arg_low(index: int) -> int:
    """Offset of the low 32 bits of syscall argument `index` (little-endian)."""
    return 16 + 8 * index


# Per architecture: (AUDIT_ARCH value, syscall numbers).
_ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (
        0xC000003E,
        {
            "socket": 41,
            "kill": 62,
            "tkill": 200,
            "tgkill": 234,
            "ptrace": 101,
            "rt_sigqueueinfo": 129,
            "rt_tgsigqueueinfo": 297,
            "process_vm_readv": 310,
            "process_vm_writev": 311,
            "fcntl": 72,
            "ioctl": 16,
            "clone": 56,
            "unshare": 272,
            "setns": 308,
            "shmget": 29,
            "semget": 64,
            "msgget": 68,
            "mq_open": 240,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "socket": 198,
            "kill": 129,
            "tkill": 130,
            "tgkill": 131,
            "ptrace": 117,
            "rt_sigqueueinfo": 138,
            "rt_tgsigqueueinfo": 240,
            "process_vm_readv": 270,
            "process_vm_writev": 271,
            "fcntl": 25,
            "ioctl": 29,
            "clone": 220,
            "unshare": 97,
            "setns": 268,
            "shmget": 194,
            "semget": 190,
            "msgget": 186,
            "mq_open": 180,
        },
    ),
}
# Same number on every architecture (the generic syscall table).
_COMMON = {
    "pidfd_send_signal": 424,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "pidfd_open": 434,
    "pidfd_getfd": 438,
    "clone3": 435,
}
_X32_SYSCALL_BIT = 0x40000000


class _Program:
    """A straight-line BPF assembler with forward labels."""

    def __init__(self) -> None:
        self._code: list[tuple[int, int, int | str, int | str, int]] = []
        self._labels: dict[str, int] = {}

    def load(self, offset: int) -> None:
        self._code.append((len(self._code), _LD_W_ABS, 0, 0, offset))

    def jump_if(self, op: int, value: int, target: str) -> None:
        """Jump to `target` when the accumulator compares true, else fall through."""
        self._code.append((len(self._code), op, target, 0, value & 0xFFFFFFFF))

    def ret(self, value: int) -> None:
        self._code.append((len(self._code), _RET_K, 0, 0, value))

    def label(self, name: str) -> None:
        self._labels[name] = len(self._code)

    def assemble(self) -> bytes:
        out = bytearray()
        for index, op, jt, jf, k in self._code:
            jt_off = self._labels[jt] - index - 1 if isinstance(jt, str) else jt
            jf_off = self._labels[jf] - index - 1 if isinstance(jf, str) else jf
            if not (0 <= jt_off < 256 and 0 <= jf_off < 256):
                raise ValueError("seccomp filter jump out of range")
            out += struct.pack("=HBBI", op, jt_off, jf_off, k)
        return bytes(out)


_IPC_CALLS = ("shmget", "semget", "msgget", "mq_open")


def build_filter(own_pid: int, machine: str | None = None, *, ipc: bool = True) -> bytes:
    """The filter for a child whose pid is `own_pid` (it may still signal itself and its group);
    `ipc=False` also refuses creating SysV IPC objects and opening POSIX message queues."""
    arch, numbers = _ARCHES[machine or platform.machine()]
    nr = numbers | _COMMON
    p = _Program()
    p.load(_OFFSET_ARCH)
    p.jump_if(_JMP_JEQ_K, arch, "native")
    p.ret(_SECCOMP_RET_KILL_PROCESS)
    p.label("native")
    p.load(_OFFSET_NR)
    p.jump_if(_JMP_JGE_K, _X32_SYSCALL_BIT, "kill_process")
    p.jump_if(_JMP_JEQ_K, nr["socket"], "socket")
    p.jump_if(_JMP_JEQ_K, nr["kill"], "signal_target_arg0")
    p.jump_if(_JMP_JEQ_K, nr["tgkill"], "signal_target_arg0")
    p.jump_if(_JMP_JEQ_K, nr["rt_sigqueueinfo"], "signal_target_arg0")
    p.jump_if(_JMP_JEQ_K, nr["rt_tgsigqueueinfo"], "signal_target_arg0")
    p.jump_if(_JMP_JEQ_K, nr["fcntl"], "fcntl")
    p.jump_if(_JMP_JEQ_K, nr["ioctl"], "ioctl")
    p.jump_if(_JMP_JEQ_K, nr["clone"], "clone")
    p.jump_if(_JMP_JEQ_K, nr["clone3"], "no_such_call")
    for name in (
        "tkill",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "pidfd_send_signal",
        "pidfd_open",
        "pidfd_getfd",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "unshare",
        "setns",
        *(() if ipc else _IPC_CALLS),
    ):
        p.jump_if(_JMP_JEQ_K, nr[name], "deny")
    p.ret(_SECCOMP_RET_ALLOW)
    # socket(domain, ...): only AF_UNIX.
    p.label("socket")
    p.load(_arg_low(0))
    p.jump_if(_JMP_JEQ_K, _AF_UNIX, "allow")
    p.ret(_DENY)
    # fcntl(fd, cmd, ...) / ioctl(fd, request, ...): the command is the second argument (32 bits).
    for label, denied in (
        ("fcntl", (_F_SETOWN, _F_SETSIG, _F_SETOWN_EX)),
        ("ioctl", (_FIOSETOWN, _SIOCSPGRP)),
    ):
        p.label(label)
        p.load(_arg_low(1))
        for command in denied:
            p.jump_if(_JMP_JEQ_K, command, "deny")
        p.ret(_SECCOMP_RET_ALLOW)
    # clone(flags, ...): every namespace flag is in the low 32 bits.
    p.label("clone")
    p.load(_arg_low(0))
    p.jump_if(_JMP_JSET_K, _CLONE_NEW_ANY, "deny")
    p.ret(_SECCOMP_RET_ALLOW)
    # kill(pid)/tgkill(tgid)/...: only 0 (own group), own pid, or -own pid (own group).
    p.label("signal_target_arg0")
    p.load(_arg_low(0))
    p.jump_if(_JMP_JEQ_K, 0, "allow")
    p.jump_if(_JMP_JEQ_K, own_pid, "allow")
    p.jump_if(_JMP_JEQ_K, -own_pid, "allow")
    p.label("deny")
    p.ret(_DENY)
    p.label("no_such_call")
    p.ret(_NO_SUCH_CALL)
    p.label("allow")
    p.ret(_SECCOMP_RET_ALLOW)
    p.label("kill_process")
    p.ret(_SECCOMP_RET_KILL_PROCESS)
    return p.assemble()


def supported() -> bool:
    return platform.machine() in _ARCHES


_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded once in the helper, before any fork


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


# A pid no process has (above PID_MAX_LIMIT), marking where the child's own pid goes.
_PID_PLACEHOLDER = 0x7FFFFF00
_INSTRUCTION = struct.Struct("=HBBI")


class PreparedFilter:
    """The filter assembled once in the helper; a child only patches in its pid and installs it.

    Doing the work before fork keeps each child from touching (and so copying) fresh pages.
    """

    def __init__(self, *, ipc: bool = True) -> None:
        program = build_filter(_PID_PLACEHOLDER, ipc=ipc)
        self._buffer = ctypes.create_string_buffer(program, len(program))
        self._fprog = _SockFprog(len(program) // 8, ctypes.cast(self._buffer, ctypes.c_void_p))
        self._pid_slots: list[tuple[int, int, int, int]] = []  # (offset, op, jt, jf) of +pid
        self._negative_pid_slots: list[tuple[int, int, int, int]] = []
        for offset in range(0, len(program), 8):
            op, jt, jf, k = _INSTRUCTION.unpack_from(program, offset)
            if op == _JMP_JEQ_K and k == _PID_PLACEHOLDER:
                self._pid_slots.append((offset, op, jt, jf))
            elif op == _JMP_JEQ_K and k == (-_PID_PLACEHOLDER) & 0xFFFFFFFF:
                self._negative_pid_slots.append((offset, op, jt, jf))

    def install(self, own_pid: int) -> None:
        """Install the filter for the calling process, whose pid is `own_pid`."""
        for offset, op, jt, jf in self._pid_slots:
            _INSTRUCTION.pack_into(self._buffer, offset, op, jt, jf, own_pid)
        for offset, op, jt, jf in self._negative_pid_slots:
            _INSTRUCTION.pack_into(self._buffer, offset, op, jt, jf, (-own_pid) & 0xFFFFFFFF)
        if _LIBC.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if _LIBC.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(self._fprog), 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")
