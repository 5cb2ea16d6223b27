"""Assembler for seccomp-tools' filter syntax: text in, :class:`~callgate.bpf.insn.Insn` out.

The accepted language is seccomp-tools' (``A = sys_number``, ``if (A == read) goto ok``,
``A == write ? ok : next``, ``return ERRNO(1)``, labels, ``#`` comments), plus:

* the full listing ``callgate disasm`` prints: its header lines are skipped and the
  four raw columns after a ``NNNN:`` line label are ignored, so a listing re-assembles;
* ``A %= k|X`` (BPF_MOD) and ``X = sys_number``-style absolute loads into X, so every
  classic-BPF encoding has a spelling, and ``.insn CODE, JT, JF, K`` for anything else;
* errno names (``EPERM``) wherever a constant goes.

Jump targets are labels, ``next``, or (as in seccomp-tools) a plain decimal number
``n`` that is no label, meaning "skip n instructions". Errors name the line and
column and say what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from callgate.arch import Arch
from callgate.asm.syntax import (
    ALU_OPS,
    COMPARISONS,
    DATA_WORDS,
    GOTO_WORDS,
    HIGH_HALF_SHIFT,
    KEYWORDS,
    LISTING_COLUMNS,
    LISTING_HEADER_LINES,
    NEXT_LABEL,
    RAW_DIRECTIVE,
    action_value,
    arch_from_constant,
    choose_arch,
    errno_value,
    syscall_value,
)
from callgate.bpf import opcodes as op
from callgate.bpf.insn import Insn
from callgate.bpf.seccomp_data import ARG_COUNT, arg_hi, arg_lo
from callgate.errors import CallgateError, suggestion

U32 = 0xFFFFFFFF
MAX_COND_OFFSET = 0xFF


class AsmError(CallgateError, ValueError):
    """Assembly text that does not assemble; says where (line, column) and why."""

    def __init__(self, message: str, *, filename: str, line: int, column: int, source: str = ""):
        self.message = message
        self.filename = filename
        self.line = line
        self.column = column
        text = f"{filename}:{line}:{column}: {message}"
        if source.strip():
            text += f"\n    {source.rstrip()}\n    {' ' * (column - 1)}^"
        super().__init__(text)


@dataclass(frozen=True)
class Token:
    kind: str  # word | number | op | label | directive | newline | end
    text: str
    line: int  # 1-based
    column: int  # 1-based


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>\#.*)
  | (?P<directive>\.[A-Za-z_]\w*)
  | (?P<number>-?0[xX][0-9a-fA-F]+(?![\w.])|-?[0-9]+(?![\w.]))
  | (?P<word>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)
  | (?P<op><<=|>>=|==|!=|>=|<=|\+=|-=|\*=|/=|&=|\|=|\^=|%=|<<|>>|[=()\[\]&!<>+\-*/|^%?:,])
    """,
    re.VERBOSE,
)
_LABEL = re.compile(r"\s*(\w+):")
_ALU_ASSIGN = {f"{sym}=": code for sym, code in ALU_OPS.items()}


def _strip_listing(line: str) -> str:
    """Blank out what a disassembly listing adds around the text, keeping columns."""
    if line.strip() in LISTING_HEADER_LINES:
        return ""
    m = LISTING_COLUMNS.match(line)
    if m:
        return m.group(1) + " " * len(m.group(2)) + line[m.end() :]
    return line


def tokenize(text: str, filename: str = "<input>") -> list[Token]:
    """Split assembly text into tokens; ``name:`` at the start of a line is a label."""
    tokens: list[Token] = []
    text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the program
    for row, raw_line in enumerate(text.splitlines(), start=1):
        line = _strip_listing(raw_line)
        pos = 0
        at_line_start = True  # labels may only precede the statement
        while pos < len(line):
            if at_line_start and (m := _LABEL.match(line, pos)):
                tokens.append(Token("label", m.group(1), row, m.start(1) + 1))
                pos = m.end()
                continue
            m = _TOKEN.match(line, pos)
            if m is None:
                bad = re.match(r"\S+", line[pos:])
                assert bad is not None
                raise AsmError(
                    f"unknown token {bad.group(0)!r}",
                    filename=filename,
                    line=row,
                    column=pos + 1,
                    source=raw_line,
                )
            kind = m.lastgroup
            assert kind is not None
            if kind not in ("space", "comment"):
                tokens.append(Token(kind, m.group(0), row, pos + 1))
                at_line_start = False
            pos = m.end()
        tokens.append(Token("newline", "\n", row, len(raw_line) + 1))
    tokens.append(Token("end", "", len(tokens) and tokens[-1].line, 1))
    return tokens


def text_arch(text: str) -> Arch | None:
    """The one architecture whose ``ARCH_*`` constant the text mentions, if exactly one."""
    return _mentioned_arch(tokenize(text))


def _mentioned_arch(tokens: list[Token]) -> Arch | None:
    arches = {
        a.name: a
        for t in tokens
        if t.kind == "word" and (a := arch_from_constant(t.text)) is not None
    }
    return next(iter(arches.values())) if len(arches) == 1 else None


@dataclass
class _Target:
    token: Token


@dataclass
class _Stmt:
    code: int
    k: int = 0
    jt: int | _Target = 0
    jf: int | _Target = 0
    labels: list[Token] = field(default_factory=list)


class _Parser:
    def __init__(self, text: str, tokens: list[Token], arch: Arch, filename: str):
        self.lines = text.splitlines()
        self.tokens = tokens
        self.arch = arch
        self.filename = filename
        self.pos = 0

    # -- token plumbing -------------------------------------------------
    def error(self, message: str, token: Token | None = None) -> AsmError:
        t = token or self.peek()
        source = self.lines[t.line - 1] if 0 < t.line <= len(self.lines) else ""
        return AsmError(
            message, filename=self.filename, line=t.line, column=t.column, source=source
        )

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        t = self.tokens[self.pos]
        if t.kind != "end":
            self.pos += 1
        return t

    def skip_newlines(self) -> None:
        while self.peek().kind == "newline":
            self.pos += 1

    def at(self, text: str) -> bool:
        t = self.peek()
        return t.kind in ("op", "word") and t.text.lower() == text

    def expect(self, text: str, what: str) -> Token:
        if not self.at(text):
            raise self.error(f"expected {what}, found {_describe(self.peek())}")
        return self.take()

    # -- program ----------------------------------------------------------
    def program(self) -> list[_Stmt]:
        stmts: list[_Stmt] = []
        labels: list[Token] = []
        while True:
            t = self.peek()
            if t.kind == "end":
                break
            if t.kind == "newline":
                self.take()
                continue
            if t.kind == "label":
                if t.text == NEXT_LABEL:
                    raise self.error("'next' is a reserved label (it means the next line)")
                labels.append(self.take())
                continue
            stmt = self.statement()
            stmt.labels, labels = labels, []
            stmts.append(stmt)
            if self.peek().kind not in ("newline", "end"):
                raise self.error(
                    f"expected the end of the line after the statement, "
                    f"found {_describe(self.peek())}"
                )
        if labels:
            raise self.error(f"label {labels[-1].text!r} has no instruction after it", labels[-1])
        return stmts

    def statement(self) -> _Stmt:
        t = self.peek()
        word = t.text.lower() if t.kind == "word" else ""
        if t.kind == "directive":
            return self.raw()
        if word == "return":
            return self.ret()
        if word in GOTO_WORDS:
            self.take()
            return _Stmt(op.BPF_JMP | op.BPF_JA, jt=self.target())
        if word == "if":
            return self.conditional()
        if word == "a":
            return self.a_statement()
        if word == "x":
            return self.x_statement()
        if word == "mem":
            return self.store()
        raise self.error(
            f"expected a statement (A = …, X = …, mem[i] = …, A op= …, if, goto, "
            f"return, .insn), found {_describe(t)}"
        )

    # -- statements -------------------------------------------------------
    def raw(self) -> _Stmt:
        t = self.take()
        if t.text.lower() != RAW_DIRECTIVE:
            raise self.error(f"unknown directive {t.text!r}; the only one is {RAW_DIRECTIVE}", t)
        fields = []
        for i, (name, limit) in enumerate(
            (("code", 0xFFFF), ("jt", 0xFF), ("jf", 0xFF), ("k", U32))
        ):
            if i:
                self.expect(",", f"',' before the {name} field of {RAW_DIRECTIVE}")
            start = self.peek()
            value = self.constant(f"the {name} field of {RAW_DIRECTIVE} CODE, JT, JF, K")
            if value > limit:
                raise self.error(f"{name} {value:#x} does not fit (at most {limit:#x})", start)
            fields.append(value)
        code, jt, jf, k = fields
        return _Stmt(code, k=k, jt=jt, jf=jf)

    def ret(self) -> _Stmt:
        self.take()
        nxt = self.peek()
        if nxt.kind == "word" and nxt.text.lower() == "a":
            self.take()
            return _Stmt(op.BPF_RET | op.BPF_A)
        if nxt.kind == "word" and (action := action_value(nxt.text)) is not None:
            self.take()
            if self.at("("):
                self.take()
                start = self.peek()
                data = self.constant("the action's data (a number or errno name)")
                if data > 0xFFFF:
                    raise self.error(
                        f"action data {data:#x} does not fit in the 16 data bits (0..0xffff)",
                        start,
                    )
                self.expect(")", "')' after the action's data")
                action |= data
            return _Stmt(op.BPF_RET | op.BPF_K, k=action)
        value = self.constant("A, an action (ALLOW, KILL, ERRNO(n), …) or a number after return")
        return _Stmt(op.BPF_RET | op.BPF_K, k=value)

    def conditional(self) -> _Stmt:
        self.take()
        self.skip_newlines()
        self.expect("(", "'(' after if")
        self.skip_newlines()
        negated, cmp_code, src, k = self.condition()
        self.skip_newlines()
        self.expect(")", "')' closing the condition")
        self.skip_newlines()
        jt: int | _Target = self.goto("after the condition")
        jf: int | _Target = 0
        save = self.pos
        self.skip_newlines()
        if self.at("else"):
            self.take()
            self.skip_newlines()
            jf = self.goto("after else")
        else:
            self.pos = save
        if negated:
            jt, jf = jf, jt
        return _Stmt(op.BPF_JMP | cmp_code | src, k=k, jt=jt, jf=jf)

    def condition(self) -> tuple[bool, int, int, int]:
        negations = 0
        while self.at("!"):  # a loop, not recursion: hostile nesting must not overflow
            self.take()
            self.skip_newlines()
            self.expect("(", "'(' after '!'")
            self.skip_newlines()
            negations += 1
        self.expect("a", "A (conditions compare A with a constant or X)")
        self.skip_newlines()
        negated, code, src, k = self.comparison()
        for _ in range(negations):
            self.skip_newlines()
            self.expect(")", "')' closing the negated condition")
        return negated ^ (negations % 2 == 1), code, src, k

    def comparison(self) -> tuple[bool, int, int, int]:
        t = self.peek()
        if t.kind != "op" or t.text not in COMPARISONS:
            raise self.error(
                f"expected a comparison ({' '.join(COMPARISONS)}), found {_describe(t)}"
            )
        self.take()
        code, negated = COMPARISONS[t.text]
        self.skip_newlines()
        src, k = self.operand("a constant or X to compare A with")
        return negated, code, src, k

    def goto(self, where: str) -> _Target:
        t = self.peek()
        if not (t.kind == "word" and t.text.lower() in GOTO_WORDS):
            raise self.error(f"expected 'goto LABEL' {where}, found {_describe(t)}")
        self.take()
        return self.target()

    def target(self) -> _Target:
        t = self.peek()
        if t.kind not in ("word", "number") or "." in t.text or t.text.startswith("-"):
            raise self.error(f"expected a label, 'next' or a line number, found {_describe(t)}")
        return _Target(self.take())

    def a_statement(self) -> _Stmt:
        self.take()
        t = self.peek()
        if t.kind == "op" and t.text in _ALU_ASSIGN:
            self.take()
            self.skip_newlines()
            src, k = self.operand("a constant or X")
            return _Stmt(op.BPF_ALU | _ALU_ASSIGN[t.text] | src, k=k)
        if t.kind == "op" and t.text in COMPARISONS:  # seccomp-tools' `A == k ? yes : no`
            negated, code, src, k = self.comparison()
            self.expect("?", "'?' in 'A op k ? LABEL : LABEL'")
            jt = self.target()
            self.expect(":", "':' in 'A op k ? LABEL : LABEL'")
            jf = self.target()
            if negated:
                jt, jf = jf, jt
            return _Stmt(op.BPF_JMP | code | src, k=k, jt=jt, jf=jf)
        self.expect("=", "'=', an ALU assignment (+= -= …) or a comparison after A")
        nxt = self.peek()
        if nxt.kind == "word" and nxt.text.lower() == "x":
            self.take()
            return _Stmt(op.BPF_MISC | op.BPF_TXA)
        if nxt.kind == "op" and nxt.text == "-":
            self.take()
            if not self.at("a"):
                raise self.error("expected A after '-' (the only unary form is A = -A)")
            self.take()
            return _Stmt(op.BPF_ALU | op.BPF_NEG)
        if nxt.kind == "op" and nxt.text in ALU_OPS:
            raise self.error("do you mean A = -A? (the only unary form)")
        return self.load(op.BPF_LD)

    def x_statement(self) -> _Stmt:
        self.take()
        self.expect("=", "'=' after X (ALU operations work on A only)")
        if self.at("a"):
            self.take()
            return _Stmt(op.BPF_MISC | op.BPF_TAX)
        return self.load(op.BPF_LDX)

    def load(self, cls: int) -> _Stmt:
        t = self.peek()
        word = t.text.lower() if t.kind == "word" else ""
        if word == "len":
            self.take()
            return _Stmt(cls | op.BPF_W | op.BPF_LEN)
        if word == "mem":
            return _Stmt(cls | op.BPF_W | op.BPF_MEM, k=self.mem_index())
        offset = self.data_word()
        if offset is not None:
            return _Stmt(cls | op.BPF_W | op.BPF_ABS, k=offset)
        value = self.constant(
            "a constant, X, len, mem[i], sys_number, arch, instruction_pointer, "
            "args[i], args_h[i] or data[k]"
        )
        return _Stmt(cls | op.BPF_IMM, k=value)

    def data_word(self) -> int | None:
        """``sys_number``, ``args[i] >> 32``, ``data[k]`` …: the offset, or None if not one."""
        t = self.peek()
        word = t.text.lower() if t.kind == "word" else ""
        if word in DATA_WORDS:
            self.take()
            offset = DATA_WORDS[word]
            if word == "instruction_pointer" and self.high_half():
                offset += 4
            return offset
        if word in ("args", "args_h"):
            self.take()
            index = self.index(f"the index of {word}[] (0..{ARG_COUNT - 1})", ARG_COUNT - 1)
            if word == "args_h":
                return arg_hi(index)
            return arg_hi(index) if self.high_half() else arg_lo(index)
        if word == "data":
            self.take()
            return self.index("the byte offset of data[]", U32)
        return None

    def high_half(self) -> bool:
        """An optional ``>> 32`` after an argument: its high word."""
        if not self.at(">>"):
            return False
        self.take()
        t = self.peek()
        if t.kind != "number" or _number(t.text) != HIGH_HALF_SHIFT:
            raise self.error("the only operator after an argument is '>> 32' (its high word)")
        self.take()
        return True

    def mem_index(self) -> int:
        self.take()
        return self.index(f"a scratch memory index (0..{op.BPF_MEMWORDS - 1})", 15)

    def index(self, what: str, limit: int) -> int:
        self.expect("[", f"'[' and {what}")
        start = self.peek()
        value = self.constant(what)
        if value > limit:
            raise self.error(f"expected {what}, got {value}", start)
        self.expect("]", "']'")
        return value

    def store(self) -> _Stmt:
        index = self.mem_index()
        self.expect("=", "'=' after mem[i]")
        if self.at("a"):
            self.take()
            return _Stmt(op.BPF_ST, k=index)
        if self.at("x"):
            self.take()
            return _Stmt(op.BPF_STX, k=index)
        raise self.error(f"expected A or X to store, found {_describe(self.peek())}")

    # -- operands ---------------------------------------------------------
    def operand(self, what: str) -> tuple[int, int]:
        """X or a constant: ``(BPF_X, 0)`` or ``(BPF_K, value)``."""
        if self.at("x"):
            self.take()
            return op.BPF_X, 0
        return op.BPF_K, self.constant(what)

    def constant(self, what: str) -> int:
        depth = 0
        while self.at("("):  # a loop, not recursion: hostile nesting must not overflow
            self.take()
            depth += 1
        value = self.atom(what)
        for _ in range(depth):
            self.expect(")", "')'")
        return value

    def atom(self, what: str) -> int:
        t = self.peek()
        if t.kind == "number":
            self.take()
            value = _number(t.text)
            if not -(1 << 31) <= value <= U32:
                raise self.error(f"{t.text} does not fit in 32 bits", t)
            return value & U32
        if t.kind == "word" and t.text.lower() not in KEYWORDS:
            self.take()
            named = self.name(t.text)
            if named is None:
                raise self.error(
                    f"unknown name {t.text!r}{suggestion(t.text, self.arch.numbers)}: not a "
                    f"{self._what_names()} of arch {self.arch.name}, an ARCH_* constant or an "
                    f"errno name (expected {what})",
                    t,
                )
            return named
        raise self.error(f"expected {what}, found {_describe(t)}")

    def _what_names(self) -> str:
        return "gate" if self.arch.is_gate_layer else "syscall"

    def name(self, word: str) -> int | None:
        lookups: tuple[Callable[[], int | None], ...] = (
            lambda: a.audit_arch if (a := arch_from_constant(word)) else None,
            lambda: syscall_value(self.arch, word),
            lambda: errno_value(self.arch, word),
        )
        for lookup in lookups:
            value = lookup()
            if value is not None:
                return value
        return None


def _number(text: str) -> int:
    neg = text.startswith("-")
    body = text[1:] if neg else text
    value = int(body, 16) if body[:2].lower() == "0x" else int(body, 10)
    return -value if neg else value


def _describe(t: Token) -> str:
    if t.kind == "end":
        return "the end of the input"
    if t.kind == "newline":
        return "the end of the line"
    return repr(t.text)


def _resolve(parser: _Parser, stmts: list[_Stmt]) -> list[Insn]:
    labels: dict[str, tuple[int, Token]] = {}
    for index, stmt in enumerate(stmts):
        for lab in stmt.labels:
            if lab.text in labels:
                first = labels[lab.text][1]
                raise parser.error(
                    f"duplicate label {lab.text!r} (first defined at line {first.line})", lab
                )
            labels[lab.text] = (index, lab)

    def offset(index: int, target: int | _Target, limit: int) -> int:
        if isinstance(target, int):
            return target
        t = target.token
        if t.text == NEXT_LABEL:
            return 0
        if t.text in labels:
            dest = labels[t.text][0]
            if dest <= index:
                raise parser.error(
                    f"backward jump to {t.text!r}: BPF jumps only forward (no loops)", t
                )
            distance = dest - index - 1
        elif t.kind == "number" and str(int(t.text)) == t.text:
            distance = int(t.text)  # seccomp-tools: a bare number skips that many lines
        else:
            raise parser.error(f"no label {t.text!r} in the program", t)
        if distance > limit:
            hint = " (jump to a 'goto' placed nearer)" if limit == MAX_COND_OFFSET else ""
            kind = "a conditional jump" if limit == MAX_COND_OFFSET else "a goto"
            raise parser.error(
                f"{t.text!r} is {distance} instructions ahead; {kind} reaches at most "
                f"{limit}{hint}",
                t,
            )
        return distance

    program = []
    for index, s in enumerate(stmts):
        if s.code == op.BPF_JMP | op.BPF_JA and isinstance(s.jt, _Target):
            program.append(Insn(s.code, 0, 0, offset(index, s.jt, U32)))
        else:
            jt = offset(index, s.jt, MAX_COND_OFFSET)
            jf = offset(index, s.jf, MAX_COND_OFFSET)
            program.append(Insn(s.code, jt, jf, s.k))
    return program


def assemble(text: str, arch: Arch | str | None = None, filename: str = "<input>") -> list[Insn]:
    """Assemble seccomp-tools syntax into instructions.

    Names resolve for ``arch``; without it, for the one architecture whose
    ``ARCH_*`` constant the program mentions, else the native one.
    """
    tokens = tokenize(text, filename)
    chosen = choose_arch(arch, _mentioned_arch(tokens) if arch is None else None)
    parser = _Parser(text, tokens, chosen, filename)
    return _resolve(parser, parser.program())
