"""Runs a command with its stderr on a pseudo-terminal; prints what the
terminal received (raw bytes) on stdout and exits with the command's code.

    pty_stderr.py COMMAND [ARG...]

stdin and stdout of the command are /dev/null. Used by tests/cli/cli.rs to see
the progress bar a terminal gets.
"""
import os
import pty
import subprocess
import sys


def main() -> int:
    master, slave = pty.openpty()
    # A wide terminal, so the bar is drawn on one line.
    os.environ.setdefault("COLUMNS", "120")
    child = subprocess.Popen(
        sys.argv[1:],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    received = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every slave end is closed
            break
        if not chunk:
            break
        received += chunk
    code = child.wait()
    sys.stdout.buffer.write(bytes(received))
    sys.stdout.buffer.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
