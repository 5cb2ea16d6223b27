"""``callgate cache info|clear``: the on-disk cache of compiled modules; and the options that
move it or turn it off for one command (``--cache-dir``, ``--no-cache`` on ``run``, ``call``
and ``learn``).

The cache itself is :mod:`callgate.runtime.compile_cache`. ``info`` says where it is, how
many entries it holds and their size, or why it is not used (turned off, or a directory
that fails its checks); it creates nothing. ``clear`` deletes the entries and the key
(exit status 1 if the directory fails its checks and was left alone).

The options work through the environment the cache reads, ``CALLGATE_CACHE_DIR`` and
``CALLGATE_CACHE=off``, set for this process before any module is loaded: so the
processes a verb starts (``learn``'s recording run, ``run --isolate``'s worker) use the
same cache, or none.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callgate.errors import CallgateError

if TYPE_CHECKING:  # wasmtime comes with it: only when a verb runs
    from callgate.runtime.compile_cache import CacheInfo, CompileCache

CACHE_DIR_HELP = ("keep compiled modules in DIR (created 0700) instead of the user's cache "
                  "directory; sets CALLGATE_CACHE_DIR (see docs/runtime.md, Compile cache)")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cache = subparsers.add_parser(
        "cache",
        help="the on-disk cache of compiled modules: where it is, its size; clear it",
        description="callgate keeps each module it compiles on disk, so the next run of it "
        "starts at once. Where: --cache-dir, else $CALLGATE_CACHE_DIR, else "
        "$XDG_CACHE_HOME/callgate/modules, else ~/.cache/callgate/modules; "
        "CALLGATE_CACHE=off turns it off. See docs/runtime.md, Compile cache.",
    )
    verbs = cache.add_subparsers(dest="cache_command", metavar="VERB", required=True)
    info = verbs.add_parser("info", help="where the cache is, its entries and bytes, or why "
                            "it is not used (creates nothing)")
    clear = verbs.add_parser("clear", help="delete every entry and the cache's key "
                             "(exit 1 if the directory fails its checks)")
    for parser, func in ((info, _info), (clear, _clear)):
        parser.add_argument("--cache-dir", metavar="DIR", type=Path,
                            help="the cache in DIR instead of the default one")
        parser.add_argument("--json", action="store_true",
                            help="print one JSON document (schema callgate.cache/1)")
        parser.set_defaults(func=func)


# --- --cache-dir and --no-cache on the verbs that run a guest ---------------------------


def add_cache_options(parser: argparse.ArgumentParser) -> None:
    """``--cache-dir DIR`` and ``--no-cache`` (read by :func:`use_cache_options`)."""
    parser.add_argument("--cache-dir", metavar="DIR", help=CACHE_DIR_HELP)
    parser.add_argument("--no-cache", action="store_true", default=None,
                        help="compile the module afresh and keep nothing on disk; "
                        "sets CALLGATE_CACHE=off")


def use_cache_options(args: argparse.Namespace) -> None:
    """Point this process (and the processes it starts) at the cache the options ask for.

    Call it before loading any module. Without either option nothing changes.
    """
    cache_dir: str | None = getattr(args, "cache_dir", None)
    no_cache = bool(getattr(args, "no_cache", None))
    if cache_dir is not None and no_cache:
        raise CallgateError("--cache-dir and --no-cache contradict each other; give one")
    if cache_dir is None and not no_cache:
        return
    if no_cache:
        os.environ["CALLGATE_CACHE"] = "off"
    else:
        if not cache_dir:
            raise CallgateError("--cache-dir needs a directory")
        os.environ.pop("CALLGATE_CACHE", None)
        os.environ["CALLGATE_CACHE_DIR"] = os.path.abspath(cache_dir)
    from callgate.runtime.compile_cache import default_cache

    default_cache.cache_clear()  # read the environment again on next use


# --- the verbs -------------------------------------------------------------------------


def _cache(args: argparse.Namespace) -> CompileCache:
    from callgate.runtime.compile_cache import CompileCache, default_cache

    if args.cache_dir is not None:
        return CompileCache(Path(os.path.abspath(args.cache_dir)))
    return default_cache()


def _info(args: argparse.Namespace) -> int:
    cache = _cache(args)
    info = cache.info()
    if args.json:
        _write_json(report("info", info))
        return 0
    for line in describe(info):
        print(line)
    return 0


def _clear(args: argparse.Namespace) -> int:
    cache = _cache(args)
    before = cache.info()
    removed = cache.clear()
    after = cache.info()
    refused = before.directory is not None and before.why_disabled is not None
    if args.json:
        _write_json(report("clear", after, removed=removed,
                           freed=before.total_bytes - after.total_bytes))
        return 1 if refused else 0
    if before.why_disabled is not None:
        print(f"nothing cleared: {_disabled(before)}")
        return 1 if refused else 0
    print(f"removed {removed} entr{'y' if removed == 1 else 'ies'} "
          f"({_size(before.total_bytes - after.total_bytes)}) from {before.directory}")
    return 0


def describe(info: CacheInfo) -> list[str]:
    """``cache info``'s lines."""
    if info.why_disabled is not None:
        return [f"compile cache: not used: {_disabled(info)}"]
    lines = [f"directory: {info.directory}"]
    if not info.exists:
        lines.append("entries:   0 (the directory is made when a module is first compiled)")
        return lines
    lines += [f"entries:   {info.entries}",
              f"size:      {_size(info.total_bytes)}"]
    return lines


def _disabled(info: CacheInfo) -> str:
    if info.directory is None:
        return f"{info.why_disabled} (unset CALLGATE_CACHE to turn it on, or give --cache-dir DIR)"
    return f"{info.directory}: {info.why_disabled}"


def _size(count: int) -> str:
    if count < 1024 * 1024:
        return f"{count} bytes" if count < 1024 else f"{count / 1024:.1f} KiB ({count} bytes)"
    return f"{count / (1024 * 1024):.1f} MiB ({count} bytes)"


def report(action: str, info: CacheInfo, *, removed: int | None = None,
           freed: int | None = None) -> dict[str, Any]:
    """The ``--json`` document (schema ``callgate.cache/1``)."""
    from callgate.cli.reports import document

    doc = document(
        "cache",
        action=action,
        directory=None if info.directory is None else str(info.directory),
        enabled=info.why_disabled is None,
        why_disabled=info.why_disabled,
        exists=info.exists,
        entries=info.entries,
        bytes=info.total_bytes,
    )
    if removed is not None:
        doc["removed"] = {"entries": removed, "bytes": freed or 0}
    return doc


def _write_json(doc: dict[str, Any]) -> None:
    from callgate.cli.reports import write_json

    write_json(doc, sys.stdout)
