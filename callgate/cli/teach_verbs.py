"""``callgate explain`` and ``callgate graph``: why a policy answers a call so; its code's shape.

``explain POLICY NAME [ARG…]`` compiles the section as ``callgate compile`` would,
then decides the call twice, on the policy model (reference semantics) and by
running the compiled program, and prints both. It exits 1 when they disagree,
which is a compiler bug. Given a program instead of a policy there are no rules to
explain: it prints the path the call takes, each line annotated.

``graph INPUT`` draws the control-flow graph of a policy's compiled section or of a
program file (raw, hex or assembly), as DOT, or as SVG through Graphviz's ``dot``.

A policy or a program: both verbs tell them apart by :mod:`callgate.cli.inputs`' rule,
as ``emu`` and ``run``/``call --policy`` do.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from callgate.arch import Arch, get_arch
from callgate.bpf.seccomp_data import U32_MASK, U64_MASK, SeccompData
from callgate.cli.bpf_verbs import (
    CliInputError,
    call_args,
    call_number,
    filter_program,
    parse_integer,
)
from callgate.cli.compile_verb import add_section_arguments, load_target
from callgate.cli.completion_verb import completes_filters
from callgate.cli.inputs import read_filter_input
from callgate.policy.compiler import compile_plan
from callgate.teach.explain import explain_call, explain_program
from callgate.teach.explain_text import (
    render_json,
    render_program_json,
    render_program_text,
    render_text,
)
from callgate.teach.graph import program_dot, render_svg
from callgate.teach.stepper import stepper_page

GRAPH_FORMATS = {".dot": "dot", ".gv": "dot", ".svg": "svg"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    explain = subparsers.add_parser(
        "explain",
        help="explain why a policy gives one call its verdict, rule by rule and line by line",
        description="Decide one call with POLICY twice: on the policy (which rules name it, "
        "each argument comparison, which rule wins and why) and by running the compiled BPF "
        "program (the executed lines, as `callgate emu` prints them). Exit status 1 if the "
        "two disagree, which would be a compiler bug. Given a program instead (.bpf/.asm/"
        ".hex, or any file not starting with '[' or '{'), it shows the annotated path only.",
    )
    completes_filters(explain.add_argument(
        "policy", metavar="POLICY|PROG", help="a policy (.toml/.json, or a shipped name: "
        "default, default+fs, allow-all) or a program; - for stdin"))
    explain.add_argument("name", metavar="NAME", help="syscall or gate name (or number)")
    explain.add_argument("args", metavar="ARG", nargs="*",
                         help="up to six arguments: decimal or 0x-hex, negative = two's complement")
    add_section_arguments(explain)
    explain.add_argument("--ip", default="0", help="instruction_pointer (default 0)")
    explain.add_argument("--arch-value", metavar="ARCH|VALUE",
                         help="seccomp_data.arch to send, as an arch name or number; default: "
                         "the filter's own (try another to see the mismatch action)")
    explain.add_argument("--json", action="store_true",
                         help="print the explanation as JSON (schema callgate.explain/1)")
    explain.add_argument("--html", metavar="FILE",
                         help="also write a self-contained page that steps through the "
                         "filter: the graph with the path lit, A, X and M at each step")
    explain.set_defaults(func=_explain)

    graph = subparsers.add_parser(
        "graph",
        help="draw the control-flow graph of a policy's compiled section or a BPF program",
        description="Draw the control-flow graph of INPUT: a policy (.toml/.json), compiled as "
        "`callgate compile` would, or a program file (raw BPF, hex or assembly). Writes DOT; "
        "SVG (-o FILE.svg) needs Graphviz's `dot`.",
    )
    completes_filters(graph.add_argument(
        "input", metavar="POLICY|PROG",
        help="a policy (.toml/.json, or a shipped name) or a program file; - for stdin"))
    graph.add_argument("-o", "--output", metavar="OUT",
                       help="FILE.dot or FILE.svg; default: DOT on stdout")
    graph.add_argument("-f", "--format", choices=("dot", "svg"),
                       help="output format; default: from OUT's suffix")
    add_section_arguments(graph)
    graph.set_defaults(func=_graph)


def _explain(args: argparse.Namespace) -> int:
    given = read_filter_input(args.policy)
    if not given.is_policy:
        return _explain_program(args)
    target = load_target(given, args, "explain")
    arch = target.arch
    data = SeccompData.make(
        call_number(args.name, arch),
        _call_arch(args.arch_value, arch),
        call_args(args.args),
        parse_integer(args.ip, "instruction pointer", 64) & U64_MASK,
    )
    explanation = explain_call(
        target.section, arch, data, compile_plan(target.plan),
        target.loaded.rule_paths.get(target.layer, ()),
    )
    source = target.loaded.policy.source
    rules = len(target.section.rules)
    title = f"{source} [{target.layer.value}], {rules} rule{'s' * (rules != 1)}"
    if args.html:
        _write_page(args.html, stepper_page(explanation, compile_plan(target.plan), arch, title,
                                            render_text(explanation, title)))
    if args.json:
        sys.stdout.write(render_json(explanation, schema="callgate.explain/1", kind="policy",
                                     policy=source, layer=target.layer.value))
    else:
        sys.stdout.write(render_text(explanation, title))
    if not explanation.agree:
        print("callgate explain: the policy and its compiled program disagree (a compiler "
              "bug); see DISAGREEMENT above", file=sys.stderr)
        return 1
    return 0


def _explain_program(args: argparse.Namespace) -> int:
    """A program has no rules: the call's annotated path, and the verdict."""
    given = read_filter_input(args.policy)
    program, arch, title = filter_program(given, args, "explain")
    data = SeccompData.make(
        call_number(args.name, arch),
        _call_arch(args.arch_value, arch),
        call_args(args.args),
        parse_integer(args.ip, "instruction pointer", 64) & U64_MASK,
    )
    explanation = explain_program(program, arch, data)
    if args.html:
        _write_page(args.html, stepper_page(explanation, program, arch, title,
                                            render_program_text(explanation, title)))
    if args.json:
        sys.stdout.write(render_program_json(explanation, schema="callgate.explain/1",
                                             kind="program", program=given.name))
    else:
        sys.stdout.write(render_program_text(explanation, title))
    return 0


def _write_page(path: str, page: str) -> None:
    try:
        Path(path).write_text(page, encoding="utf-8")
    except OSError as exc:
        raise CliInputError(f"cannot write {path}: {exc.strerror or exc}") from None


def _call_arch(text: str | None, arch: Arch) -> int:
    if text is None:
        return arch.audit_arch
    try:
        int(text, 0)
    except ValueError:
        return get_arch(text).audit_arch
    return parse_integer(text, "--arch-value", 32) & U32_MASK


def _graph(args: argparse.Namespace) -> int:
    fmt = args.format or _format_of(args.output)
    program, arch, title = filter_program(read_filter_input(args.input), args, "graph")
    dot = program_dot(program, arch, title)
    data = render_svg(dot) if fmt == "svg" else dot.encode()
    if args.output and args.output != "-":
        try:
            Path(args.output).write_bytes(data)
        except OSError as exc:
            raise CliInputError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        return 0
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return 0


def _format_of(output: str | None) -> str:
    if not output or output == "-":
        return "dot"
    fmt = GRAPH_FORMATS.get(Path(output).suffix.lower())
    if fmt is None:
        raise CliInputError(
            f"cannot tell the format from {output!r}; name it .dot or .svg, or pass --format"
        )
    return fmt
