"""Bad input to the CLI and the API: one clear line (or one clear exception), never a
traceback, a truncated value or a crashed process.

CLI cases run the real command line in a subprocess with this interpreter and check
the documented exit status and that stderr is exactly one line with no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from rt_helpers import Recorder, gate_policy, guest, probe_gates

from callgate.gates.errors import PolicyRefused
from callgate.gates.wasi import Preopen, WasiConfig, WasiConfigError, WasiProvider
from callgate.runtime import Errno, Limits, Plugin
from callgate.runtime.broker import MAX_ERRNO
from callgate.runtime.limits import MAX_FUEL, MAX_STACK, MAX_TIMEOUT, LimitsError

USAGE_EXIT = 2  # usage errors and modules that cannot be loaded (docs/runtime.md, wasi.md)


def callgate(*args: str, stdin: bytes = b"", cwd: Path | None = None
             ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "callgate", *args], input=stdin,
                          capture_output=True, timeout=120, cwd=cwd)


def one_line_error(done: subprocess.CompletedProcess[bytes], status: int = USAGE_EXIT) -> str:
    """Assert exit ``status`` and a one-line stderr without a traceback; return the line."""
    err = done.stderr.decode()
    assert done.returncode == status, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# -- the command line ----------------------------------------------------------------------

HELLO = str(guest("hello"))


@pytest.mark.parametrize(("argv", "says"), [
    (["--fuel", "-5"], "--fuel"),
    (["--fuel", "0x1ffffffffffffffff"], "--fuel"),
    (["--fuel", "nope"], "--fuel"),
    (["--timeout", "inf"], "--timeout"),
    (["--timeout", "nan"], "--timeout"),
    (["--timeout", "1e300"], "--timeout"),
    (["--memory", "99999999999G"], "--memory"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_out_of_range_limit_options_are_one_line_usage_errors(argv, says):
    line = one_line_error(callgate("call", HELLO, "add", "1", "2", *argv))
    assert says in line and "--help" in line
    line = one_line_error(callgate("run", str(guest("lines")), *argv, "--", "1"))
    assert says in line


def test_limits_at_their_bounds_still_run():
    done = callgate("call", HELLO, "add", "40", "2", "--fuel", str(MAX_FUEL),
                    "--timeout", f"{MAX_TIMEOUT:.0f}")
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, b"42", b"")


def test_an_audit_path_that_cannot_be_written_is_one_line(tmp_path):
    for path in (tmp_path, tmp_path / "missing" / "audit.jsonl"):
        line = one_line_error(callgate("call", HELLO, "add", "1", "2", "--audit", str(path)))
        assert "audit file" in line and str(path) in line
        line = one_line_error(callgate("run", str(guest("lines")), "--audit", str(path)))
        assert "audit file" in line
    assert not (tmp_path / "missing").exists()


def test_wrong_number_of_integer_arguments_is_one_line():
    line = one_line_error(callgate("call", HELLO, "add", "1"))
    assert "add takes 2 argument(s)" in line and "got 1" in line
    line = one_line_error(callgate("call", HELLO, "add", "1", "2", "3"))
    assert "got 3" in line


def test_a_missing_input_file_is_one_line(tmp_path):
    line = one_line_error(callgate("call", HELLO, "greet", "--input", str(tmp_path / "nope")))
    assert "cannot read --input" in line and "nope" in line


@pytest.mark.parametrize("name", ["hostile_big_memory", "hostile_big_table"])
def test_a_module_refused_for_its_limits_exits_2_not_134(name):
    line = one_line_error(callgate("run", str(guest(name))))
    assert "exceeds" in line and "Limits." in line


def test_a_missing_dir_is_refused_even_when_the_guest_touches_no_file(tmp_path):
    command = tmp_path / "noop.wat"
    command.write_text('(module (func (export "_start")))')  # imports nothing at all
    assert callgate("run", str(command)).returncode == 0
    line = one_line_error(callgate("run", str(command), "--dir", f"{tmp_path}/missing::/d"))
    assert "cannot preopen" in line and "missing" in line


def test_guest_arguments_after_double_dash_stay_the_guests():
    done = callgate("run", str(guest("envargs")), "--", "--env", "A=1", "-n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == ["argc=4", "argv[0]=envargs.wasm",
                                                 "argv[1]=--env", "argv[2]=A=1", "argv[3]=-n"]


def test_a_broker_answering_an_errno_out_of_range_is_refused(tmp_path):
    (tmp_path / "cg_bad_broker.py").write_text(textwrap.dedent("""
        from callgate.runtime import Errno
        def wide(request):
            return Errno(65536)
    """))
    policy = tmp_path / "trap.toml"
    policy.write_text(gate_policy("trap"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "callgate", "run", str(guest("lines")),
                           "--policy", str(policy), "--broker", "cg_bad_broker:wide", "--", "1"],
                          capture_output=True, timeout=120, env=env)
    # A bug in the broker (host code) ends the run like any broker exception: status 1.
    assert done.returncode == 1 and done.stdout == b""
    assert "Errno(65536) is out of range" in done.stderr.decode().strip().splitlines()[-1]


# -- the API -------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    {"stack": 4 << 20}, {"stack": MAX_STACK + 1}, {"stack": 1024}, {"stack": 2.0**20},
    {"fuel": MAX_FUEL + 1}, {"fuel": -1}, {"fuel": 1.5}, {"fuel": True},
    {"timeout": float("inf")}, {"timeout": float("nan")}, {"timeout": 1e300},
    {"timeout": MAX_TIMEOUT * 2}, {"timeout": 0}, {"timeout": "1s"}, {"timeout": True},
    {"memory": 1 << 63}, {"memory": "16M"}, {"table_elements": -1}, {"output": -1},
], ids=repr)
def test_limits_refuse_what_cannot_be_enforced_with_a_clear_error(bad):
    with pytest.raises(LimitsError, match=rf"Limits\.{next(iter(bad))} must") as info:
        Limits(**bad)
    assert isinstance(info.value, ValueError)


def test_the_stack_bound_is_wasmtimes_and_the_largest_stack_runs():
    """wasmtime panics (SIGABRT, the whole process) for a max_wasm_stack over its async
    stack size: pin that bound in a subprocess, both sides of it."""
    probe = textwrap.dedent("""
        import sys, wasmtime
        config = wasmtime.Config()
        config.max_wasm_stack = int(sys.argv[1])
        wasmtime.Engine(config)
        print("ok")
    """)
    at = subprocess.run([sys.executable, "-c", probe, str(MAX_STACK)], capture_output=True,
                        timeout=60)
    past = subprocess.run([sys.executable, "-c", probe, str(MAX_STACK + 1)],
                          capture_output=True, timeout=60)
    assert (at.returncode, at.stdout) == (0, b"ok\n")
    assert past.returncode == -6 and b"async_stack_size" in past.stderr  # why Limits refuses
    run = textwrap.dedent(f"""
        from callgate.runtime import Limits, Plugin, StackOverflow
        with Plugin({str(guest("hostile_recursion"))!r}, limits=Limits(stack={MAX_STACK})) as p:
            try:
                p.call_int("run")
            except StackOverflow:
                print("overflow")
    """)
    done = subprocess.run([sys.executable, "-c", run], capture_output=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, b"overflow\n"), done.stderr


def test_the_largest_fuel_and_timeout_work():
    limits = Limits(fuel=MAX_FUEL, timeout=MAX_TIMEOUT)
    with Plugin(guest("hello"), limits=limits) as p:
        assert p.call_int("add", 2, 3) == 5


def test_a_policy_of_the_wrong_type_is_refused_as_a_policy():
    with pytest.raises(PolicyRefused, match="list of other things"):
        Plugin(guest("hello"), policy=[1, 2])


@pytest.mark.parametrize(("bad", "says"), [
    ({"max_fds": 0}, "max_fds=0"),
    ({"max_fds": 3, "preopens": [Preopen("/tmp", "/t")]}, "at least 4"),
    ({"max_fds": "64"}, "max_fds must be an int"),
    ({"args": "prog"}, "args must be a sequence"),
    ({"args": ["a\0b"]}, "without NUL"),
    ({"env": {"A=B": "c"}}, "env key"),
    ({"env": {"A": 1}}, "env['A']"),
    ({"stdin": 5}, "stdin"),
    ({"stdout": b""}, "stdout"),
    ({"preopens": ["/tmp"]}, "Preopen("),
    ({"sockets": [3]}, "sockets"),
], ids=repr)
def test_wasi_config_fields_are_checked_with_wasi_config_error(bad, says):
    with pytest.raises(WasiConfigError) as info:
        WasiConfig(**bad)
    assert says in str(info.value)


def test_wasi_config_changed_after_it_was_made_is_checked_again():
    config = WasiConfig()
    config.max_fds = 0
    with pytest.raises(WasiConfigError, match="max_fds"):
        Plugin(guest("lines"), providers=[WasiProvider(config)])


@pytest.mark.parametrize("n", [0, -1, MAX_ERRNO + 1, 65536, 2**32])
def test_errno_out_of_range_is_refused_when_made(n):
    with pytest.raises(ValueError, match="out of range"):
        Errno(n)


def test_errno_of_the_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="int errno"):
        Errno("5")  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [65536, 2**32, 0])
def test_a_broker_answer_out_of_range_aborts_the_call(n):
    """However the out-of-range Errno was made, the guest never sees it (65536 would
    reach a u16 errno as 0: success)."""
    recorder = Recorder()

    def broker(request):
        answer = Errno(5)
        object.__setattr__(answer, "n", n)  # past the constructor's check
        return answer

    with Plugin(guest("gatecall1"), gates=probe_gates(recorder),
                policy=gate_policy("trap", app_gates=("probe1",)), broker=broker) as p:
        with pytest.raises(ValueError, match=f"Errno\\({n}\\) is out of range"):
            p.call_int("once", 5)
        assert p.counters["probe1"]["trap"] == 1
    assert recorder.calls == []


def test_the_largest_errno_reaches_the_guest():
    with Plugin(guest("gatecall1"), gates=probe_gates(Recorder()),
                policy=gate_policy("trap", app_gates=("probe1",)),
                broker=lambda request: Errno(MAX_ERRNO)) as p:
        assert p.call_int("once", 5) == -MAX_ERRNO
