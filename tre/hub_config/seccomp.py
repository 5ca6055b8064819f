"""A seccomp filter for researchers' servers: the system calls a notebook never needs, refused.

Installed by the sandbox launcher as the last step before it execs the server (after the
privilege drop and `no_new_privs`), it holds for the server, every kernel and everything they
start; no process can remove it. A refused call fails with EPERM (ENOSYS for clone3, so that
the C library falls back to clone, whose flags the filter can read), never kills:

- new namespaces: `unshare` and `clone` with any CLONE_NEW* flag, `setns`. A user namespace
  would make the researcher uid 0 in it (`unshare -Ur`), with the kernel's whole namespaced
  attack surface (mounts, netfilter, ...) reachable from a kernel;
- mounting and the root: mount, umount2, pivot_root, chroot and the new mount API;
- kernel keys, BPF, perf events, io_uring, userfaultfd, handles by inode (open_by_handle_at),
  ptrace and cross-process memory access, fanotify;
- the machine's own business: modules, kexec, reboot, swap, accounting, the kernel log, the
  clock, quotas, I/O ports.

The program is assembled here as classic BPF (no library needed); it checks the architecture
first (x86_64 only: anything else, including the x32 ABI, is refused).
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

# <linux/audit.h>, <linux/seccomp.h>, <linux/filter.h>
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_JGE_K = 0x35
BPF_JSET_K = 0x45
BPF_RET_K = 0x06
# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]
OFFSET_NR, OFFSET_ARCH, OFFSET_ARG0 = 0, 4, 16  # args[0]'s low 32 bits (little-endian)

# x86_64 numbers (<asm/unistd_64.h>).
SYS_CLONE, SYS_UNSHARE, SYS_CLONE3 = 56, 272, 435
REFUSED = {
    "ptrace": 101,
    "syslog": 103,
    "uselib": 134,
    "vhangup": 153,
    "pivot_root": 155,
    "adjtimex": 159,
    "chroot": 161,
    "acct": 163,
    "settimeofday": 164,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "iopl": 172,
    "ioperm": 173,
    "init_module": 175,
    "delete_module": 176,
    "quotactl": 179,
    "nfsservctl": 180,
    "lookup_dcookie": 212,
    "clock_settime": 227,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "perf_event_open": 298,
    "fanotify_init": 300,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "clock_adjtime": 305,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "kcmp": 312,
    "finit_module": 313,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "pidfd_getfd": 438,
    "mount_setattr": 442,
    "quotactl_fd": 443,
}
# <linux/sched.h>: CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET; NEWTIME
# (0x80) only for unshare, where clone's low byte is the exit signal instead.
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
CLONE_NEWTIME = 0x00000080


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def build_program() -> list[bytes]:
    """The filter, one 8-byte BPF instruction per item."""
    eperm = SECCOMP_RET_ERRNO | errno.EPERM
    prog = [
        _op(BPF_LD_W_ABS, OFFSET_ARCH),
        _op(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        _op(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
        _op(BPF_LD_W_ABS, OFFSET_NR),
        _op(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1),
        _op(BPF_RET_K, eperm),
    ]
    for number in sorted(REFUSED.values()):
        prog += [_op(BPF_JEQ_K, number, 0, 1), _op(BPF_RET_K, eperm)]
    prog += [_op(BPF_JEQ_K, SYS_CLONE3, 0, 1), _op(BPF_RET_K, SECCOMP_RET_ERRNO | errno.ENOSYS)]
    for number, flags in ((SYS_CLONE, CLONE_NAMESPACES), (SYS_UNSHARE, CLONE_NAMESPACES | CLONE_NEWTIME)):
        # if nr == number: load args[0]; refuse if any namespace flag is set, else allow.
        prog += [
            _op(BPF_JEQ_K, number, 0, 4),
            _op(BPF_LD_W_ABS, OFFSET_ARG0),
            _op(BPF_JSET_K, flags, 0, 1),
            _op(BPF_RET_K, eperm),
            _op(BPF_RET_K, SECCOMP_RET_ALLOW),
        ]
    prog.append(_op(BPF_RET_K, SECCOMP_RET_ALLOW))
    return prog


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install() -> None:
    """Install the filter on the calling thread; it holds for everything exec'd or forked from it.

    The sandbox calls it while single-threaded, just before exec. Sets no_new_privs (needed for
    an unprivileged process to install a filter, and already set by the sandbox).
    """
    if platform.machine() != "x86_64":
        raise OSError(errno.ENOSYS, f"the seccomp filter is written for x86_64, not {platform.machine()}")
    code = b"".join(build_program())
    buffer = ctypes.create_string_buffer(code, len(code))
    program = _SockFprog(len(code) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "no_new_privs")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0) != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"installing the seccomp filter: {errno.errorcode.get(number, number)}")
