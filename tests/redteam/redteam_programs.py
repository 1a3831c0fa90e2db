"""The red-team problems and hostile programs: each program is a completion that must earn reward 0.

FUNCTION_ATTACKS target the `double` problem (a wrong `double` plus a trick to
be judged passed); STDIN_ATTACKS target `secret` (they look for the stored
answer). `{data}` in a program is replaced by the path of the problems file,
`{repo}` by this checkout, `{port}` by a local TCP port that answers the
secret: a program that knows where the answer is still must not reach it.
Each stdin attack prints the answer when it finds it, so without the jail it
earns full reward (tests/redteam/test_redteam_executor.py runs it outside the
sandbox to show that); STDIN_SEES is what the jailed ones print instead.
"""

from __future__ import annotations

from tarot_jobs.problems.model import Problem, TestCase, Tier
from tarot_jobs.sandbox.types import ProgramKind

TIERS = (Tier.BASIC, Tier.INTERMEDIATE, Tier.COMPLEX, Tier.EDGE)
# A number that appears only in the tests (never in a program): a leak of the tests would show it.
TEST_MARKER = 918273645

WRONG = "def double(x):\n    return 0\n"

# A reply to the checker's first call, forged on the call socket with any tokens (plaindata.py), then exit.
FORGE = (
    "import json, os, socket, struct\n"
    "def answer(tokens):\n"
    "    body = json.dumps({'id': 1, 'value': tokens}, separators=(',', ':')).encode()\n"
    "    socket.socket(fileno=os.dup(3)).sendall(struct.pack('>I', len(body)) + body)\n"
    "    os._exit(0)\n"
)
# Big ints that all share one hash (ints hash modulo 2**61 - 1): building a set of them is quadratic.
COLLIDING = "[t for k in range(1, 30001) for t in ('i', hex(k * ((1 << 61) - 1) + 1))]"

FUNCTION_ATTACKS: dict[str, str] = {
    # The pass marker on the old result descriptor, then leave.
    "marker_fd3_close": WRONG + "import os\nos.write(3, b'done\\n')\nos.close(3)\n",
    "marker_fd3_exit": WRONG + "import os\nos.write(3, b'done\\n')\nos._exit(0)\n",
    "marker_every_fd": WRONG
    + "import os\nfor fd in range(64):\n    try:\n        os.write(fd, b'done\\n')\n"
    + "    except OSError:\n        pass\n",
    "marker_in_call": "import os\ndef double(x):\n    os.write(3, b'done\\n')\n    os._exit(0)\n",
    # Forged replies on the call socket (well-formed and not).
    "forged_reply_frames": WRONG
    + "import os, json, struct\nfor i in range(1, 9):\n"
    + "    body = json.dumps({'id': i, 'value': ['v', True], 'outcome': 'passed'}).encode()\n"
    + "    os.write(3, struct.pack('>I', len(body)) + body)\n",
    "garbage_on_channel": WRONG + "import os\nos.write(3, b'\\xff' * 64)\n",
    "stop_iteration": "def double(x):\n    raise StopIteration\n",
    "system_exit_in_call": "import sys\ndef double(x):\n    sys.exit(0)\n",
    # Monkeypatching what a test would run on, in the program's own process.
    "patch_builtins": WRONG
    + "import builtins, os, sys\n"
    + "builtins.exec = lambda *a, **k: None\nbuiltins.AssertionError = type('Quiet', (Exception,), {})\n"
    + "os.write = lambda fd, data: len(data)\nsys.excepthook = lambda *a: None\n",
    "patch_json_encoder": WRONG
    + "import json\n_dumps = json.dumps\njson.dumps = lambda obj, **k: _dumps("
    + "{**obj, 'value': ['v', True]} if isinstance(obj, dict) and 'value' in obj else obj, **k)\n",
    "atexit_and_signals": WRONG
    + "import atexit, os, signal\natexit.register(lambda: os._exit(0))\n"
    + "for s in (signal.SIGTERM, signal.SIGALRM, signal.SIGINT):\n"
    + "    signal.signal(s, lambda *a: os._exit(0))\n",
    # Values whose equality the program wrote.
    "eq_always_true": "class Any:\n    def __eq__(self, other):\n        return True\n"
    + "    __hash__ = object.__hash__\ndef double(x):\n    return Any()\n",
    "int_subclass_eq": "class Int(int):\n    def __eq__(self, other):\n        return True\n"
    + "    __hash__ = int.__hash__\ndef double(x):\n    return Int(0)\n",
    "list_subclass_eq": "class L(list):\n    def __eq__(self, other):\n        return True\n"
    + "def double(x):\n    return L()\n",
    # Looking for the tests and expected values in the program's own memory.
    "frame_walk": "import sys\ndef double(x):\n    f = sys._getframe()\n"
    + "    while f.f_back:\n        f = f.f_back\n"
    + "    for name, value in f.f_globals.items():\n        if isinstance(value, int) and value == 2 * x:\n"
    + "            return value\n    return 0\n",
    "gc_walk": "import gc, re\ndef double(x):\n    for obj in gc.get_objects():\n"
    + "        if isinstance(obj, str) and f'double({x}) ==' in obj:\n"
    + "            return int(re.search(rf'double\\({x}\\) == (\\d+)', obj).group(1))\n    return 0\n",
    # Reaching the checker or the helper from the jail.
    "ptrace_parent": WRONG
    + "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nfor pid in range(1, 64):\n"
    + "    libc.ptrace(16, pid, 0, 0)\n",
    "kill_everyone": WRONG
    + "import os, signal\nfor pid in (-1, 0, 1, os.getppid()):\n"
    + "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n",
    "read_proc_mem": WRONG
    + "import os\nfor pid in os.listdir('/proc') if os.path.isdir('/proc') else []:\n    try:\n"
    + "        open(f'/proc/{pid}/mem', 'rb').read(1)\n    except Exception:\n        pass\n",
    "raise_limits": WRONG
    + "import resource\nfor r in (resource.RLIMIT_CPU, resource.RLIMIT_AS, resource.RLIMIT_NPROC):\n"
    + "    try:\n        resource.setrlimit(r, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
    + "    except (ValueError, OSError):\n        pass\n",
    # Making its own failure look like infrastructure.
    "fake_setup_error": WRONG
    + "import os\nfor fd in (3, 4):\n    try:\n        os.write(fd, b'setup:Boom: fake')\n"
    + "    except OSError:\n        pass\nos._exit(125)\n",
    "die_by_sigkill": "import os, signal\ndef double(x):\n    os.kill(os.getpid(), signal.SIGKILL)\n",
    # Values whose decoding would stall or crash the checker (set/dict construction with colliding hashes
    # in C, a gcd of two huge ints, hashing a tuple nested deeper than the C stack): before the limits, ~5 s
    # of C code the checker's deadline could not interrupt, or a segfault that dropped the sample.
    "checker_colliding_set": FORGE + f"def double(x):\n    answer({COLLIDING} + ['s', 30000])\n",
    "checker_colliding_dict": FORGE
    + "def double(x):\n    answer([t for k in range(1, 24001) for t in "
    + "('i', hex(k * ((1 << 61) - 1) + 1), 'v', 0)] + ['d', 24000])\n",
    "checker_huge_fraction": FORGE
    + "def double(x):\n    n, d = 3 ** 1200000, 5 ** 800000\n"
    + "    answer(['i', hex(n), 'i', hex(d), 'q', 2])\n",
    "checker_deep_tuple": FORGE + "def double(x):\n    answer(['v', 0] + ['t', 1] * 160000 + ['fs', 1])\n",
    # Signals by a file's owner (fcntl/ioctl) to the helper and anyone else, and nested namespaces.
    "signal_by_file_owner": WRONG
    + "import fcntl, os, signal, socket\na, b = socket.socketpair()\n"
    + "for pid in (1, os.getppid(), -1):\n"
    + "    for cmd, arg in ((fcntl.F_SETOWN, pid), (10, signal.SIGKILL)):\n"
    + "        try:\n            fcntl.fcntl(a, cmd, arg)\n        except OSError:\n            pass\n"
    + "    fcntl.fcntl(a, fcntl.F_SETFL, fcntl.fcntl(a, fcntl.F_GETFL) | os.O_ASYNC)\n    b.send(b'x')\n",
    "nested_namespaces": WRONG
    + "import ctypes\nlibc = ctypes.CDLL(None)\nfor flag in (0x10000000, 0x40000000, 0x20000, 0x20000000):\n"
    + "    libc.unshare(flag)\n",
}

STDIN_ATTACKS: dict[str, str] = {
    "read_the_data_file": "n = int(input())\nimport json\ntry:\n    lines = open({data!r}).readlines()\n"
    + "except OSError as exc:\n    lines = []\n    print(type(exc).__name__)\nfor line in lines:\n"
    + "    for t in json.loads(line)['tests']:\n"
    + "        if t['input'].strip() == str(n) and t['output']:\n            print(t['output'].strip())\n",
    "search_the_disk": "import os\nn = input().strip()\nfound = []\n"
    + "for top in ('/', {repo!r}, os.path.dirname({data!r}), '/root', '/home', '/tmp', '/work'):\n"
    + "    for root, dirs, files in os.walk(top):\n"
    + "        if root.startswith(('/proc', '/usr', '/sys', '/dev')):\n"
    + "            dirs[:] = []\n            continue\n"
    + "        for f in files:\n"
    + "            try:\n                text = open(os.path.join(root, f), errors='ignore').read(1 << 20)\n"
    + "            except OSError:\n                continue\n"
    + "            if 'tok' in text and '-' + n in text:\n"
    + "                i = text.index('-' + n)\n"
    + "                found.append(text[text.rindex('tok', 0, i):i + 2])\n"
    + "        if len(dirs) > 200:\n            dirs[:] = []\n"
    + "print(found[0] if found else 'nothing')\n",
    # A witness process holds the secret's token in its command line and environment (conftest.py).
    "proc_of_others": "import os, re\nn = input().strip()\nfound = []\n"
    + "for pid in os.listdir('/proc') if os.path.isdir('/proc') else []:\n"
    + "    for part in ('cmdline', 'environ'):\n        try:\n"
    + "            text = open(f'/proc/{{pid}}/{{part}}', 'rb').read().decode(errors='ignore')\n"
    + "        except Exception:\n            continue\n"
    + "        found += re.findall('tok[0-9a-f]{{24}}', text)\n"
    + "print(f'{{found[0]}}-{{n}}' if found else 'nothing')\n",
    "etc_shadow": "try:\n    print(len(open('/etc/shadow').read()), 'bytes')\n"
    + "except OSError as exc:\n    print(type(exc).__name__)\n",
    "fake_setup_error_stdin": "import os\nfor fd in range(3, 16):\n    try:\n"
    + "        os.write(fd, b'setup:Boom: fake\\n')\n    except OSError:\n        pass\nos._exit(125)\n",
    # A server on the host's loopback answers the secret for n (conftest.py).
    "network": "import socket\nn = input().strip()\ntry:\n"
    + "    s = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
    + "    s.sendall(n.encode() + b'\\n')\n    print(s.makefile().readline().strip())\n"
    + "except OSError as exc:\n    print(type(exc).__name__)\n",
}

# Every route known to have dropped a run (sandbox_error, the sample left out of training) instead of scoring
# the wrong program 0: tests/redteam/test_redteam_blame.py runs them through the executor, and
# test_redteam_routes.py through `tarot score` and the service. Stdin ones on any problem, function ones as
# `double`.
DROP_STDIN_ROUTES: dict[str, str] = {
    "chmod_scratch_000": "import os\nos.chmod('.', 0)\n",
    "mode_000_tree": "import os\nos.makedirs('a/b')\nos.chmod('a/b', 0)\nos.chmod('a', 0)\nprint('x')\n",
    "deep_tree": (
        "import os\nfor _ in range(600):\n    os.mkdir('x' * 12)\n    os.chdir('x' * 12)\nos.chmod('.', 0)\n"
    ),
    "setup_marker": "import sys\nsys.stderr.write('setup:Broken: fake')\nraise SystemExit(125)\n",
    "kill_self": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
}
DROP_FUNCTION_ROUTES: dict[str, str] = {
    "deeply_nested_value": (
        "def double(x):\n    v = []\n    for _ in range(200000):\n        v = [v]\n    return v\n"
    ),
    # Parts of 79000 and 100000 bits: ints within the limit, a Fraction over it (normalising is a gcd).
    "huge_fraction": (
        "from fractions import Fraction\ndef double(x):\n    return Fraction(3 ** 50000, 2 ** 100000)\n"
    ),
    "huge_int": "def double(x):\n    return 7 ** 3000000\n",
    # 80000 ints that share one hash: plain data within every limit, but the test's set() of them is
    # ~3e9 comparisons in C, where the checker's SIGALRM cannot fire; the pool ends the checker at its
    # deadline + CHECKER_GRACE_S (this once was a sandbox error: the sample was dropped).
    "checker_stalled_by_the_test": (
        "def double(x):\n    return [k * ((1 << 61) - 1) + 1 for k in range(1, 80001)]\n"
    ),
}
# A test of the function routes other than `assert double(2) == 4`.
DROP_ROUTE_TESTS = {"checker_stalled_by_the_test": "assert set(double(2)) == {4}"}

# What the jailed stdin attacks print (nothing of the host is there to find).
STDIN_SEES = {
    "proc_of_others": "nothing",
    "etc_shadow": "FileNotFoundError",  # the jail's root has no /etc/shadow at all
    "network": "PermissionError",  # socket(AF_INET) is refused by the seccomp filter
    "read_the_data_file": "FileNotFoundError",
}


def function_completion(name: str) -> str:
    return f"```python\n{FUNCTION_ATTACKS[name]}```"


def stdin_program(name: str, **places: object) -> str:
    """The program of a stdin attack with its `{data}`, `{repo}` and `{port}` filled in."""
    return STDIN_ATTACKS[name].format(**places)


def stdin_completion(name: str, **places: object) -> str:
    return f"```python\n{stdin_program(name, **places)}```"


def double_problem() -> Problem:
    tests = [
        TestCase(input=f"assert double({x}) == {2 * x}", tier=tier)
        for x, tier in ((3, Tier.BASIC), (21, Tier.INTERMEDIATE), (TEST_MARKER, Tier.COMPLEX))
    ]
    # A test that runs the candidate inside map(): a StopIteration from it must not end all() early.
    tests.append(TestCase(input="assert all(map(lambda x: double(x) == 2 * x, [1, 2, 3]))", tier=Tier.EDGE))
    return Problem(
        id="double",
        statement="Write double(x) returning 2 * x.",
        gold_solution="def double(x):\n    return 2 * x\n",
        kind=ProgramKind.FUNCTION,
        entry_point="double",
        tests=tests,
    )


def secret_problem(token: str) -> Problem:
    return Problem(
        id="secret",
        statement="Print the secret.",
        gold_solution="n = int(input())\nprint(f'" + token + "-{n}')\n",
        tests=[TestCase(input=f"{i}\n", output=f"{token}-{i}\n", tier=tier) for i, tier in enumerate(TIERS)],
    )
