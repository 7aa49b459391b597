"""The child process that holds ``file_lease``'s read leases (run as a script; standard library
only). Lines in: ``hold HEX``, ``release HEX``, ``ack HEX`` (HEX: a path's bytes); lines out:
``held HEX``, ``refused HEX``, ``breaking HEX``. The count of reads in flight is an int64 at the
start of the shared memory passed as the file descriptor argument. It ends when its input ends
(the editor quit or died), and the kernel then drops its leases.
"""
import fcntl
import mmap
import os
import select
import signal
import struct
import sys
import time

#: a writer in the editor's own process blocks holding its GIL: it cannot acknowledge
ACK_WAIT_S = 0.2
#: then its reads in flight cannot go on either (they need that GIL): the ones inside a C call
#: finish within this, the others wait for the GIL anyway
STUCK_READERS_S = 2.0

def _readers_wait_s() -> float:
    """The longest a writer waits for reads in flight (a save of a big file reads for a while):
    a little less than the kernel's own limit, after which it breaks the lease itself."""
    try:
        with open("/proc/sys/fs/lease-break-time") as f:
            return max(1.0, float(f.read()) - 5.0)
    except (OSError, ValueError):
        return 10.0


#: the kernel's SIGIO wakes us when a lease breaks; the idle tick is only a fallback
IDLE_TICK_S, BREAKING_TICK_S = 1.0, 0.002


def _take(held, code):
    try:
        fd = os.open(bytes.fromhex(code), os.O_RDONLY | os.O_CLOEXEC)
    except (OSError, ValueError):
        return "refused"
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError:  # not the owner, open for writing elsewhere, no leases on this file system
        os.close(fd)
        return "refused"
    held[code] = fd
    return "held"


def _give_up(held, breaking, code):
    breaking.pop(code, None)
    fd = held.pop(code, None)
    if fd is not None:
        try:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        except OSError:
            pass
        os.close(fd)


def _breaks(fd):
    try:
        return fcntl.fcntl(fd, fcntl.F_GETLEASE) == fcntl.F_UNLCK
    except OSError:
        return True


def _say(kind, code):
    sys.stdout.write(f"{kind} {code}\n")
    sys.stdout.flush()


def main(shared_fd):
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    signal.signal(signal.SIGIO, lambda *_: None)  # a lease breaks: the wakeup byte wakes select
    shared = mmap.mmap(shared_fd, mmap.PAGESIZE)
    held, breaking, pending = {}, {}, b""
    readers_wait_s = _readers_wait_s()
    while True:
        tick = BREAKING_TICK_S if breaking else IDLE_TICK_S if held else None
        ready = select.select([0, wake_read], [], [], tick)[0]
        if wake_read in ready:
            while True:
                try:
                    if not os.read(wake_read, 512):
                        break
                except BlockingIOError:
                    break
        if 0 in ready:
            chunk = os.read(0, 65536)
            if not chunk:
                return
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                command, _, code = line.decode().partition(" ")
                if command == "hold":
                    _say(_take(held, code), code)
                elif command == "release":
                    _give_up(held, breaking, code)
                elif command == "ack" and code in breaking:
                    breaking[code][1] = True
        now = time.monotonic()
        for code, fd in held.items():
            if code not in breaking and _breaks(fd):
                breaking[code] = [now, False]
                _say("breaking", code)
        readers = struct.unpack_from("q", shared, 0)[0]
        for code, (since, acked) in list(breaking.items()):
            waited = now - since
            if ((readers <= 0 and (acked or waited > ACK_WAIT_S))
                    or (not acked and waited > ACK_WAIT_S + STUCK_READERS_S)
                    or waited > readers_wait_s):
                _give_up(held, breaking, code)


if __name__ == "__main__":
    main(int(sys.argv[1]))
