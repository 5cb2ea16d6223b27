"""``compile --format oci``: a kernel section as a runc profile that decides as callgate does.

Three readers of an exported profile must agree with the section it came from, call
for call: callgate's own OCI loader (the reference semantics of what it loads), and,
where pyseccomp is installed, libseccomp as runc drives it (test_oci_runc_peer's
transcription of runc). The inputs are the Docker default profile (for several
capability sets and kernels), the host policies `callgate kernel policy` derives, and
random sections, which must either round-trip or be refused with a reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from strategies import sections, sweep
from test_oci_runc_peer import assert_same_decisions, native_libseccomp

from callgate.arch import native_arch
from callgate.bpf.seccomp_data import SeccompData
from callgate.cli import main
from callgate.cli.inputs import shipped_policy
from callgate.kernel.hostpolicy import derive_host_policy
from callgate.policy import load_policy, load_policy_text
from callgate.policy.model import ArgCheck, Op, Rule, Section
from callgate.policy.oci_export import OciExportError, export_oci
from callgate.policy.reference import decide, wrong_abi

ROOT = Path(__file__).resolve().parents[2]
ARCH = native_arch()
DOCKER_LIKE = ROOT / "policies" / "examples" / "docker-like.json"
TARGETS = [([], (6, 18)), ([], (4, 4)), (["CAP_SYS_ADMIN"], (6, 1)),
           (["CAP_SYS_PTRACE", "CAP_BPF", "CAP_SYS_ADMIN"], (5, 10))]
ARG_VALUES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x10000, 0x10011, 0x7E020000, 0xFFFFFFFF,
              2**32, 2**64 - 1]


def reload(profile: dict, **target) -> Section:
    section = load_policy_text(json.dumps(profile), format="oci", arch=ARCH.name,
                               **target).policy.kernel
    assert section is not None
    return section


def grid(section: Section) -> list[SeccompData]:
    """Every syscall number (and a few past the table) with plain args; the syscalls a
    rule checks args of, with every combination of interesting values."""
    checked = {ARCH.numbers[n] for r in section.rules if r.args for n in r.names
               if n in ARCH.numbers}
    top = max(ARCH.numbers.values())
    calls = [SeccompData.make(nr, ARCH.audit_arch, list(args))
             for nr in [*range(top + 1), top + 1, top + 50]
             for args in ((0,) * 6, (2**64 - 1,) * 6)]
    values = sorted({*ARG_VALUES, *(c.value for r in section.rules for c in r.args)})
    for nr in sorted(checked):
        for a0 in values:
            for a2 in (0, 1, 2, 3, 4, 5, 6, 7, 2**32 + 4):
                calls += [SeccompData.make(nr, ARCH.audit_arch, [a0, 0, a2, 0, 0, 0]),
                          SeccompData.make(nr, ARCH.audit_arch, [a0, a0, a0, a0, a0, a0])]
    return calls


def assert_round_trip(section: Section, profile: dict, calls: list[SeccompData]) -> None:
    again = reload(profile)
    for data in calls:
        if wrong_abi(ARCH, data.nr) or data.arch != ARCH.audit_arch:
            continue  # another ABI: runc answers with its bad-arch action (a note says so)
        assert decide(again, ARCH, data) == decide(section, ARCH, data), \
            (ARCH.name_of(data.nr), data.nr, list(data.args))


@pytest.mark.parametrize(("caps", "kernel"), TARGETS)
def test_docker_default_round_trips(caps: list[str], kernel: tuple[int, int]) -> None:
    section = load_policy(DOCKER_LIKE, arch=ARCH.name, caps=caps, kernel_version=kernel).kernel
    assert section is not None
    exported = export_oci(section, ARCH)
    assert exported.notes == []  # an OCI profile's own meaning carries over whole
    assert_round_trip(section, exported.profile, grid(section))


@pytest.mark.parametrize(("caps", "kernel"), TARGETS)
def test_docker_default_export_decides_the_same_under_libseccomp(
        caps: list[str], kernel: tuple[int, int]) -> None:
    native_libseccomp()
    section = load_policy(DOCKER_LIKE, arch=ARCH.name, caps=caps, kernel_version=kernel).kernel
    assert section is not None
    assert_same_decisions(export_oci(section, ARCH).profile, section)


def host_section(name: str) -> Section:
    from callgate.cli.kernel_verbs import gate_specs

    policy = load_policy(ROOT / name) if "/" in name else shipped_policy(name)
    return derive_host_policy(policy, gate_specs(), arch=ARCH).section


HOST_POLICIES = ["default", "default+fs", "allow-all"]


@pytest.mark.parametrize("name", HOST_POLICIES)
def test_host_policies_round_trip(name: str) -> None:
    section = host_section(name)
    exported = export_oci(section, ARCH)
    assert_round_trip(section, exported.profile, grid(section))
    # W^X survives the rewrite: mmap with PROT_WRITE|PROT_EXEC is still refused
    mmap = ARCH.numbers["mmap"]
    again = reload(exported.profile)
    for prot in range(8):
        data = SeccompData.make(mmap, ARCH.audit_arch, [0, 4096, prot, 0, 0, 0])
        assert decide(again, ARCH, data) == decide(section, ARCH, data)


@pytest.mark.parametrize("name", HOST_POLICIES)
def test_host_policies_decide_the_same_under_libseccomp(name: str) -> None:
    native_libseccomp()
    section = host_section(name)
    assert_same_decisions(export_oci(section, ARCH).profile, section)


def test_a_low_word_inequality_that_must_be_written_is_refused() -> None:
    """kernel-worker.toml answers ENOTTY to an ioctl whose request's low word is neither
    TCGETS nor TIOCGWINSZ: a profile has no low-word 'ne', and a 64-bit one would answer
    differently when the high word is set."""
    with pytest.raises(OciExportError, match=r"ioctl .*args\[1\] ne 0x5401 on the low 32 bits"):
        export_oci(host_section("policies/examples/kernel-worker.toml"), ARCH)


# -- the rewrite, rule by rule ---------------------------------------------------------------

ALLOW, KILL, EPERM = 0x7FFF0000, 0x80000000, 0x00050001


def rule(names: tuple[str, ...], action: int, *checks: ArgCheck) -> Rule:
    return Rule(names=names, action=action, args=checks)


def test_a_stronger_conditional_rule_is_subtracted_from_a_weaker_unconditional_one() -> None:
    section = Section(default=EPERM, rules=(
        rule(("mmap",), ALLOW),
        rule(("mmap",), KILL, ArgCheck(2, Op.MASKED_EQ, 6, 6, 64)),
    ))
    profile = export_oci(section, ARCH).profile
    entries = profile["syscalls"]
    # KILL as written; ALLOW only where KILL cannot match (prot & 6 is 0, 2 or 4)
    assert [e["action"] for e in entries] == ["SCMP_ACT_KILL_PROCESS"] + ["SCMP_ACT_ALLOW"] * 3
    assert all(e["args"][0]["op"] == "SCMP_CMP_MASKED_EQ" for e in entries)
    assert_round_trip(section, profile, grid(section))


def test_rules_with_the_default_action_are_only_subtracted() -> None:
    section = Section(default=EPERM, rules=(
        rule(("ioctl",), ALLOW, ArgCheck(0, Op.LE, 2, None, 64)),
        rule(("ioctl",), EPERM, ArgCheck(1, Op.EQ, 0x5401, None, 64)),
    ))
    profile = export_oci(section, ARCH).profile
    assert {e["action"] for e in profile["syscalls"]} == {"SCMP_ACT_ALLOW"}
    assert_round_trip(section, profile, grid(section))


@pytest.mark.parametrize(("checks", "why"), [
    ((ArgCheck(0, Op.LT, 5, None, 32),), "on the low 32 bits"),
    ((ArgCheck(0, Op.GE, 1, None, 64), ArgCheck(0, Op.LE, 2, None, 64)),
     r"test args\[0\] twice"),
])
def test_what_no_profile_can_say_is_refused_with_the_rule(checks: tuple[ArgCheck, ...],
                                                          why: str) -> None:
    section = Section(default=EPERM, rules=(rule(("write",), ALLOW, *checks),))
    with pytest.raises(OciExportError, match=why) as info:
        export_oci(section, ARCH)
    assert "write (kernel.rules[0])" in str(info.value)


def test_trap_with_data_is_refused() -> None:
    section = Section(default=EPERM, rules=(rule(("write",), 0x00030005),))
    with pytest.raises(OciExportError, match="carries data"):
        export_oci(section, ARCH)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_sections_round_trip_or_are_refused(data: st.DataObject) -> None:
    section = data.draw(sections(ARCH))
    try:
        exported = export_oci(section, ARCH)
    except OciExportError:
        return  # refused, with a reason: never a profile that means something else
    assert_round_trip(section, exported.profile, sweep(section, ARCH))


# -- the command line ------------------------------------------------------------------------

def test_cli_writes_a_profile_and_notes_what_it_cannot_carry(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "profile.json"
    policy = tmp_path / "kernel.toml"
    policy.write_text('[kernel]\ndefault = "errno(EPERM)"\n[[kernel.rules]]\n'
                      'names = ["read", "write"]\naction = "allow"\n')
    assert main(["compile", str(policy), "--format", "oci", "-o", str(out)]) == 0
    profile = json.loads(out.read_text())
    assert profile["defaultAction"].startswith("SCMP_ACT_")
    err = capsys.readouterr().err
    assert "callgate compile: note: calls from another architecture" in err
    assert main(["check", str(out)]) == 0  # what callgate itself says of it


def test_cli_refuses_oci_for_the_gates_layer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", "default", "--format", "oci"]) == 2
    assert "the gates layer has none" in capsys.readouterr().err
