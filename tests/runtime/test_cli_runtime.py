"""``callgate call`` and ``callgate gates``, run as the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import console_script, require
from rt_helpers import gate_policy, guest

from callgate.arch.gate_numbers import WASI_GATES
from callgate.cli import main

GATES_MODULE = textwrap.dedent("""
    from callgate.gates.app import AppGates
    gates = AppGates()
    gates.add("probe1", lambda call, a: a + 1, params=("i64",), results=("i64",),
              number=0x1001, uses_memory=False)
""")


def callgate(*args: str, stdin: bytes = b"", cwd=None, env=None) -> subprocess.CompletedProcess:
    exe = console_script()
    command = [str(exe)] if exe else [sys.executable, "-m", "callgate"]
    return subprocess.run([*command, *args], input=stdin, capture_output=True, timeout=120,
                          cwd=cwd, env=env)


def importable(tmp_path, monkeypatch, module: str, source: str) -> str:
    """Write ``module`` into tmp_path and put it on the path, here and in subprocesses."""
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return module


@pytest.fixture
def app_gates_module(tmp_path, monkeypatch):
    return importable(tmp_path, monkeypatch, "cg_test_gates", GATES_MODULE) + ":gates"


def test_call_bytes_export_from_stdin_and_file(tmp_path):
    done = callgate("call", str(guest("hello")), "greet", "--input", "-", stdin=b"you")
    assert (done.returncode, done.stdout, done.stderr) == (0, b"hello, you", b"")
    text = tmp_path / "in.txt"
    text.write_bytes(b"a b c\nd\n")
    done = callgate("call", str(guest("wordcount")), "wordcount", "--input", str(text))
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"lines": 2, "words": 4, "bytes": 8}


def test_call_integer_export_prints_its_result():
    done = callgate("call", str(guest("hello")), "add", "40", "0x2")
    assert (done.returncode, done.stdout.decode().strip()) == (0, "42")


def test_limit_errors_are_one_stderr_line():
    done = callgate("call", str(guest("hostile_spin")), "run", "--fuel", "100000")
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "fuel" in lines[0]
    done = callgate("call", str(guest("hostile_spin")), "run", "--timeout", "0.05")
    assert done.returncode == 2 and "deadline" in done.stderr.decode()


def test_memory_cap_from_the_command_line():
    done = callgate("call", str(guest("hostile_membomb")), "grow_all", "--memory", "1M",
                    "--fuel", "100000000")
    assert done.returncode == 0 and int(done.stdout) <= 16


def test_kill_exits_159_with_one_line_naming_the_gate(tmp_path, app_gates_module):
    policy = tmp_path / "kill.toml"
    policy.write_text(gate_policy("kill_process", app_gates=("probe1",)))
    done = callgate("call", str(guest("gatecall1")), "once", "5", "--policy", str(policy),
                    "--gates", app_gates_module)
    assert done.returncode == 159
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert "probe1" in lines[0] and f"#{0x1001}" in lines[0] and "KILL_PROCESS" in lines[0]
    assert done.stdout == b""


def test_kill_thread_also_exits_159(tmp_path, app_gates_module):
    policy = tmp_path / "kill.toml"
    policy.write_text(gate_policy("kill_thread", app_gates=("probe1",)))
    assert main(["call", str(guest("gatecall1")), "once", "5", "--policy", str(policy),
                 "--gates", app_gates_module]) == 159


def test_denied_calls_are_audited_to_the_file(tmp_path, app_gates_module, capsys):
    policy = tmp_path / "deny.toml"
    policy.write_text(gate_policy("errno(EPERM)", app_gates=("probe1",)))
    audit = tmp_path / "audit.jsonl"
    assert main(["call", str(guest("gatecall1")), "run", "3", "--policy", str(policy),
                 "--gates", app_gates_module, "--audit", str(audit)]) == 0
    assert capsys.readouterr().out.strip() == str(-63 * 3)
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [r["args"] for r in records] == [[0], [1], [2]]
    assert {(r["gate"], r["number"], r["action"]) for r in records} == \
        {("probe1", 0x1001, "ERRNO(63)")}


def test_audit_dash_writes_records_to_stderr_and_leaves_stderr_open(tmp_path):
    policy = tmp_path / "deny-stderr.toml"
    policy.write_text('[gates]\ndefault = "allow"\n[[gates.rules]]\nnames = ["fd_write"]\n'
                      'action = "errno(EPERM)"\nargs = [{index = 0, op = "eq", value = 2}]\n')
    # lines without arguments writes its usage to fd 2: denied, so only the record shows.
    done = callgate("run", str(guest("lines")), "--policy", str(policy), "--audit", "-")
    assert done.returncode == 2 and done.stdout == b""
    records = [json.loads(line) for line in done.stderr.decode().splitlines()]
    assert [(r["gate"], r["args"][0], r["action"]) for r in records] == \
        [("fd_write", 2, "ERRNO(63)")]
    assert not (tmp_path / "-").exists()


def test_a_policy_name_given_as_an_option_is_pointed_at_policy():
    done = callgate("run", "--allow-all", str(guest("hello")))
    assert done.returncode == 2
    assert "--policy allow-all" in done.stderr.decode()
    done = callgate("run", "--bogus", str(guest("hello")))
    assert done.returncode == 2 and "--policy" not in done.stderr.decode()


def test_a_dash_argument_after_wasm_is_pointed_after_the_double_dash():
    """Options after WASM are callgate's; a guest's own -x must follow --, and the error
    says so (wasmtime's CLI hands everything after the module to the guest)."""
    done = callgate("run", str(guest("envargs")), "-x", "foo")
    assert done.returncode == 2
    assert "-- ARGS" in done.stderr.decode() and done.stdout == b""
    done = callgate("run", str(guest("envargs")), "--", "-x", "foo")
    assert done.returncode == 0 and b"argv[1]=-x\nargv[2]=foo\n" in done.stdout


def test_unknown_export_and_refused_module_are_clear_errors():
    done = callgate("call", str(guest("hello")), "nope")
    assert done.returncode == 2 and "nope" in done.stderr.decode()
    done = callgate("call", str(guest("hostile_foreign_import")), "run")
    assert done.returncode == 2 and "env.system" in done.stderr.decode()


def test_bad_gates_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["call", str(guest("hello")), "add", "--gates", "no_such_module_xyz:gates"])
    assert info.value.code == 2
    assert "cannot load app gates" in capsys.readouterr().err


def test_gates_prints_the_table_in_number_order(app_gates_module, capsys):
    assert main(["gates", "--gates", app_gates_module]) == 0
    out = capsys.readouterr().out
    assert "0x1001" in out and "probe1" in out and "(i64) -> (i64)" in out
    numbers = [int(line.split()[1]) for line in out.splitlines()[1:] if line[:2] == "0x"]
    assert numbers == sorted(numbers)


def test_gates_lists_every_wasi_gate_with_its_witx_number(capsys):
    from callgate.runtime.loading import default_providers
    require(bool(default_providers()), "the WASI preview1 gate provider")
    assert main(["gates"]) == 0
    rows = {line.split()[3]: int(line.split()[1]) for line in
            capsys.readouterr().out.splitlines()[1:] if line[:2] == "0x"}
    assert {name: rows.get(name) for name in WASI_GATES} == \
        {name: nr for nr, name in enumerate(WASI_GATES)}


# fd_write (gate 26) only on fd 1, where it gets ERRNO(63), WASI's EPERM; every other gate
# is allowed.
STDOUT_ONLY_ASM = """\
A = arch
if (A != 0x43474154) goto kill
A = sys_number
if (A != 26) goto allow
A = args[0]
if (A != 1) goto deny
A = args_h[0]
if (A != 0) goto deny
allow:
return ALLOW
deny:
return ERRNO(63)
kill:
return KILL_PROCESS
"""


@pytest.mark.parametrize("form", ["asm", "raw"])
def test_a_hand_written_gate_filter_runs_as_the_policy(tmp_path, form):
    program = tmp_path / "stdout-only.asm"
    program.write_text(STDOUT_ONLY_ASM)
    if form == "raw":
        raw = tmp_path / "stdout-only.bpf"
        assert callgate("asm", str(program), "-o", str(raw)).returncode == 0
        program = raw
    done = callgate("run", str(guest("lines")), "--policy", str(program), "--audit", "-",
                    "--", "2")
    assert done.returncode == 0 and done.stdout == b"line 1\nline 2\n"
    # lines without arguments: its usage goes to fd 2, which the filter denies.
    done = callgate("run", str(guest("lines")), "--policy", str(program), "--audit", "-")
    records = [json.loads(line) for line in done.stderr.decode().splitlines()]
    assert done.returncode == 2 and [(r["gate"], r["args"][0]) for r in records] == \
        [("fd_write", 2)]


def test_a_gate_filter_program_cannot_drive_the_kernel_layer(tmp_path):
    program = tmp_path / "stdout-only.asm"
    program.write_text(STDOUT_ONLY_ASM)
    for option in ("--kernel", "--isolate"):
        done = callgate("run", str(guest("lines")), "--policy", str(program), option)
        assert done.returncode == 2 and b"Use a .toml policy" in done.stderr


# --- --broker and --tracer: Python that answers trap, user_notif and trace verdicts -------

BROKER_MODULE = textwrap.dedent("""
    import sys
    from callgate import ALLOW, Errno, Value

    EACCES = 2  # WASI's number for "Permission denied"

    def notes_only(request):
        fd, _lookup_flags, path_ptr, path_len = request.args[:4]
        path = request.memory.read(path_ptr, path_len).decode()
        print(f"broker: {request.action} {request.gate.name} {path}", file=sys.stderr)
        return ALLOW if path == "notes.txt" else Errno(EACCES)

    def times7(request):
        return Value(request.args[0] * 7)

    def explode(request):
        raise RuntimeError("the broker exploded")

    not_callable = 42
""")

# cat.wasm's needs, with path_open sent to the broker (docs/tutorial.md, "TRAP: asking a
# broker").
TRAP_OPEN = gate_policy(
    "errno(ENOSYS)",
    'names = ["args_sizes_get", "args_get", "proc_exit", "fd_prestat_get", '
    '"fd_prestat_dir_name", "fd_fdstat_get", "fd_read", "fd_close", "fd_write"]\n'
    'action = "allow"',
    'names = ["path_open"]\naction = "trap"',
)


@pytest.fixture
def broker_module(tmp_path, monkeypatch):
    return importable(tmp_path, monkeypatch, "cg_test_broker", BROKER_MODULE)


@pytest.fixture
def data_dir(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("meeting at noon\n")
    (data / "secret.txt").write_text("the password is swordfish\n")
    return data


@pytest.mark.parametrize("where", ["before WASM", "after WASM", "after WASM, --isolate"])
def test_run_broker_reads_the_path_and_allows_one_file_only(tmp_path, broker_module, data_dir,
                                                            where):
    policy = tmp_path / "trap-open.toml"
    policy.write_text(TRAP_OPEN)
    broker = ["--broker", f"{broker_module}:notes_only"]
    options = ["--policy", str(policy), "--dir", f"{data_dir}::/data"]
    files = ["--", "/data/notes.txt", "/data/secret.txt"]
    if where == "before WASM":
        done = callgate("run", *broker, str(guest("cat")), *options, *files)
    else:
        isolate = ["--isolate"] if "isolate" in where else []
        done = callgate("run", str(guest("cat")), *options, *isolate, *broker, *files)
    stderr = done.stderr.decode()
    assert (done.returncode, done.stdout) == (1, b"meeting at noon\n"), stderr
    assert "broker: trap path_open notes.txt" in stderr
    assert "broker: trap path_open secret.txt" in stderr
    assert "cat: /data/secret.txt: Permission denied" in stderr  # Errno(2), WASI's EACCES


def test_run_without_a_broker_denies_the_trap_with_eperm(tmp_path, data_dir):
    policy = tmp_path / "trap-open.toml"
    policy.write_text(TRAP_OPEN)
    done = callgate("run", str(guest("cat")), "--policy", str(policy),
                    "--dir", f"{data_dir}::/data", "--", "/data/notes.txt")
    assert (done.returncode, done.stdout) == (1, b"")
    assert b"cat: /data/notes.txt: Operation not permitted" in done.stderr


@pytest.mark.parametrize(("action", "option"), [("trap", "--broker"), ("trace", "--tracer")])
def test_call_broker_value_is_what_the_guest_gets(tmp_path, app_gates_module, broker_module,
                                                  action, option):
    policy = tmp_path / f"{action}.toml"
    policy.write_text(gate_policy(action, app_gates=("probe1",)))
    done = callgate("call", str(guest("gatecall1")), "once", "5", "--policy", str(policy),
                    "--gates", app_gates_module, option, f"{broker_module}:times7")
    # probe1 itself would answer 5 + 1; the hook's Value(5 * 7) skips it.
    assert (done.returncode, done.stdout.decode().strip(), done.stderr) == (0, "35", b"")


@pytest.mark.parametrize(("attr", "message"), [
    ("cg_no_such_module:broker", "cannot load broker 'cg_no_such_module:broker': No module "
     "named 'cg_no_such_module' (is its directory on PYTHONPATH?)"),
    ("cg_test_broker:nope", "cannot load broker 'cg_test_broker:nope': module "
     "'cg_test_broker' has no attribute 'nope'"),
    ("cg_test_broker:not_callable", "cg_test_broker:not_callable is not callable (its type "
     "is int)"),
    ("cg_test_broker", "cannot load broker 'cg_test_broker': want MODULE:ATTR"),
])
@pytest.mark.parametrize("verb", ["call", "run before WASM", "run after WASM"])
def test_bad_broker_option_is_a_usage_error_naming_the_problem(broker_module, capsys, attr,
                                                               message, verb):
    argv = {"call": ["call", str(guest("hello")), "add", "--broker", attr],
            "run before WASM": ["run", "--broker", attr, str(guest("lines"))],
            "run after WASM": ["run", str(guest("lines")), "--broker", attr]}[verb]
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert f"argument --broker: {message}" in err, err


def test_bad_tracer_option_names_the_tracer(broker_module, capsys):
    with pytest.raises(SystemExit) as info:
        main(["call", str(guest("hello")), "add", "--tracer", "cg_test_broker:nope"])
    assert info.value.code == 2
    assert "argument --tracer: cannot load tracer 'cg_test_broker:nope'" in capsys.readouterr().err


def test_a_broker_that_raises_surfaces_its_exception(tmp_path, app_gates_module, broker_module):
    policy = tmp_path / "trap.toml"
    policy.write_text(gate_policy("trap", app_gates=("probe1",)))
    done = callgate("call", str(guest("gatecall1")), "once", "5", "--policy", str(policy),
                    "--gates", app_gates_module, "--broker", f"{broker_module}:explode")
    # As for an exception from a gate: a bug in host code keeps its traceback, status 1.
    stderr = done.stderr.decode()
    assert (done.returncode, done.stdout) == (1, b""), stderr
    assert stderr.strip().splitlines()[-1] == "RuntimeError: the broker exploded"
    assert "cg_test_broker.py" in stderr  # the traceback reaches into the broker


def test_an_isolated_run_reports_a_raising_broker_in_one_line(tmp_path, broker_module, data_dir):
    policy = tmp_path / "trap-open.toml"
    policy.write_text(TRAP_OPEN)
    done = callgate("run", str(guest("cat")), "--isolate", "--policy", str(policy),
                    "--dir", f"{data_dir}::/data", "--broker", f"{broker_module}:explode",
                    "--", "/data/notes.txt")
    lines = done.stderr.decode().strip().splitlines()
    assert (done.returncode, done.stdout) == (2, b"")
    assert len(lines) == 1 and "RuntimeError: the broker exploded" in lines[0]


def test_isolate_refuses_a_tracer_clearly(tmp_path, broker_module):
    done = callgate("run", str(guest("lines")), "--isolate", "--tracer",
                    f"{broker_module}:times7")
    assert done.returncode == 2
    assert b"--tracer is not available with --isolate" in done.stderr
