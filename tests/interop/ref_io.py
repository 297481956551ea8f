"""Shared helpers of the reference CLIs (esdk_ref.py, hierarchy_ref.py,
mpl_ref.py): usage errors, input files, the encryption context file, suite ids and the
all-or-nothing output file. Imports no SDK, so each CLI chooses what the
ESDK loads."""

import argparse
import io
import json
import os
import sys
import tempfile


class UsageError(Exception):
    """Bad command line or bad input file."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def read_bytes(path):
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UsageError("cannot read {}: {}".format(path, e.strerror))


def parse_suite(text, suites):
    """The member of the AlgorithmSuite enum `suites` with hex id `text`."""
    try:
        suite_id = int(text, 16)
    except ValueError:
        raise UsageError("bad suite id {!r} (want hex, e.g. 0x0478)".format(text))
    for suite in suites:
        if suite.algorithm_id == suite_id:
            return suite
    raise UsageError("unknown algorithm suite 0x{:04X}".format(suite_id))


def load_context(path):
    try:
        ctx = json.loads(read_bytes(path).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError("bad --context-json {}: {}".format(path, e))
    if not isinstance(ctx, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in ctx.items()):
        raise UsageError("--context-json must hold a JSON object of string to string")
    return ctx


def open_input(path):
    """The input stream and its length when it is a regular file."""
    if path == "-":
        return sys.stdin.buffer, None
    try:
        f = open(path, "rb")
    except OSError as e:
        raise UsageError("cannot open input {}: {}".format(path, e.strerror))
    length = None
    try:
        if os.path.isfile(path):
            length = os.fstat(f.fileno()).st_size
    except OSError:
        pass
    return f, length


class Output(object):
    """Writes to a temporary file next to the target; renamed into place only
    on success. "-" collects the bytes for `stdout` (default: the process's)."""

    def __init__(self, path, stdout=None, prefix=".ref."):
        self.path = path
        self.stdout = stdout if stdout is not None else sys.stdout.buffer
        if path == "-":
            self.buf = io.BytesIO()
            self.file = self.buf
            self.tmp = None
        else:
            directory = os.path.dirname(os.path.abspath(path))
            try:
                fd, self.tmp = tempfile.mkstemp(prefix=prefix, dir=directory)
            except OSError as e:
                raise UsageError("cannot write output in {}: {}".format(directory, e.strerror))
            self.file = os.fdopen(fd, "wb")
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o666 & ~umask)

    def commit(self):
        if self.tmp is None:
            self.stdout.write(self.buf.getvalue())
            if hasattr(self.stdout, "flush"):
                self.stdout.flush()
            return
        self.file.close()
        os.replace(self.tmp, self.path)
        self.tmp = None

    def abort(self):
        if self.tmp is not None:
            try:
                self.file.close()
            finally:
                os.unlink(self.tmp)
            self.tmp = None


def describe(e):
    """Type and message of an exception, following the MPL's wrapped errors
    (`message` may itself be an exception, `list` holds the collected ones)."""
    msg = getattr(e, "message", None)
    if isinstance(msg, BaseException):
        text = describe(msg)
    elif isinstance(msg, str):
        text = msg
    elif len(e.args) == 1 and isinstance(e.args[0], BaseException):
        text = describe(e.args[0])
    else:
        text = str(e)
    inner = getattr(e, "list", None)
    if isinstance(inner, list) and inner:
        text += " [" + "; ".join(describe(x) for x in inner) + "]"
    text = text.replace("\r", " ").replace("\n", " ").strip()
    return type(e).__name__ + (": " + text if text else "")


def cli_main(name, run, last_error, argv=None):
    """The entry point of an MPL reference CLI: one command (its output on
    stdout), or `batch JOBS.json` (a JSON list of argument lists, run in one
    process; prints a JSON list of {"ok", "error", "stdout"} in order).
    `run(argv, out)` runs a command; `last_error()` names the last AWS error
    seen, if any. Every failure is one line on stderr and exit 1."""

    def one_line(e):
        line = describe(e)
        if last_error():
            line += " (last AWS error: {})".format(last_error())
        return line

    def batch(job_file):
        try:
            with open(job_file, encoding="utf-8") as f:
                jobs = json.load(f)
        except (OSError, ValueError) as e:
            raise UsageError("cannot read jobs {}: {}".format(job_file, e))
        if not isinstance(jobs, list) or not all(
            isinstance(j, list) and all(isinstance(a, str) for a in j) for j in jobs
        ):
            raise UsageError("jobs file must hold a JSON list of lists of strings")
        results = []
        for job in jobs:
            buf = io.BytesIO()
            try:
                run(job, buf)
                results.append({"ok": True, "error": None, "stdout": buf.getvalue().decode("utf-8", "replace")})
            except Exception as e:  # noqa: BLE001 - each job's failure is reported, not raised
                results.append({"ok": False, "error": one_line(e), "stdout": buf.getvalue().decode("utf-8", "replace")})
        sys.stdout.write(json.dumps(results) + "\n")

    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] == "batch":
            if len(argv) != 2:
                raise UsageError("usage: batch JOBS.json")
            batch(argv[1])
        else:
            buf = io.BytesIO()
            run(argv, buf)
            sys.stdout.buffer.write(buf.getvalue())
            sys.stdout.buffer.flush()
    except Exception as e:  # noqa: BLE001 - every failure is a one-line exit 1
        sys.stderr.write(name + ": " + one_line(e) + "\n")
        return 1
    return 0
