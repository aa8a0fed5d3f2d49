# SPDX-License-Identifier: GPL-2.0
"""upm - User-guided Page Merging from Python (ctypes; no compiled code).

madvise(addr, len, MADV_UPM) merges, before it returns, every present private
anonymous page of the range with an identical page that some process merged
before, or makes it a page that later callers merge with (see
Documentation/admin-guide/mm/upm.rst).

    import upm
    upm.advise(model)             # a torch module's parameters and buffers
    upm.advise(tensor)            # one tensor's storage
    upm.advise(bytearray_or_mv)   # anything with the buffer protocol
    upm.advise_range(addr, n)     # whole pages inside [addr, addr + n)
    upm.advise_process()          # every private anonymous region
    upm.set_domain(7)             # merge only within domain 7 (root only)

Each returns an Advice: the ranges, pages and bytes advised, the seconds
spent in madvise, and the change of the counters in /sys/kernel/mm/upm over
the call (system-wide: concurrent callers elsewhere show up too). Errors
raise OSError with madvise's errno. The same functions take advice=
MADV_MERGEABLE or MADV_UNMERGEABLE to hand the ranges to KSM's ksmd
instead, or to undo merging.
"""
import ctypes
import errno
import os
import time

__all__ = ["MADV_MERGEABLE", "MADV_UNMERGEABLE", "MADV_UPM", "PAGE_SIZE",
           "Advice", "advise", "advise_range", "advise_process",
           "private_anonymous_regions", "stats", "available",
           "PR_SET_UPM_DOMAIN", "PR_GET_UPM_DOMAIN", "set_domain",
           "get_domain"]

MADV_MERGEABLE = 12
MADV_UNMERGEABLE = 13
MADV_UPM = 26
PR_SET_UPM_DOMAIN = 0x55504d01
PR_GET_UPM_DOMAIN = 0x55504d02
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
SYSFS = "/sys/kernel/mm/upm"

_libc = ctypes.CDLL(None, use_errno=True)
_madvise = _libc.madvise
_madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_madvise.restype = ctypes.c_int
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                   ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int


class _PyBuffer(ctypes.Structure):
    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p),
                ("len", ctypes.c_ssize_t), ("itemsize", ctypes.c_ssize_t),
                ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_char_p),
                ("shape", ctypes.POINTER(ctypes.c_ssize_t)),
                ("strides", ctypes.POINTER(ctypes.c_ssize_t)),
                ("suboffsets", ctypes.POINTER(ctypes.c_ssize_t)),
                ("internal", ctypes.c_void_p)]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None
_PYBUF_SIMPLE = 0


def available():
    """True when the running kernel has UPM (its sysfs counters exist)."""
    return os.path.isdir(SYSFS)


def stats():
    """The counters in /sys/kernel/mm/upm as a dict (empty without UPM)."""
    out = {}
    try:
        names = os.listdir(SYSFS)
    except OSError:
        return out
    for name in names:
        try:
            with open(os.path.join(SYSFS, name)) as f:
                out[name] = int(f.read())
        except (OSError, ValueError, IndexError):
            pass
    return out


def set_domain(domain):
    """Put this process (and its later children) in merge domain `domain`.

    Its pages then merge only with pages of processes in the same domain,
    by MADV_UPM and by ksmd. Needs CAP_SYS_ADMIN; raises OSError (EPERM,
    EINVAL for a domain outside 1..2**31-1, EBUSY once pages were merged in
    another domain).
    """
    if _prctl(PR_SET_UPM_DOMAIN, domain, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"PR_SET_UPM_DOMAIN {domain}: {os.strerror(err)}")


def get_domain():
    """This process's merge domain, 0 when none was assigned."""
    rc = _prctl(PR_GET_UPM_DOMAIN, 0, 0, 0, 0)
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"PR_GET_UPM_DOMAIN: {os.strerror(err)}")
    return rc


class Advice:
    """What one call of advise*() did."""

    def __init__(self):
        self.ranges = 0		# madvise calls made
        self.bytes = 0		# bytes advised (whole pages)
        self.skipped = 0	# regions that vanished before they were advised
        self.seconds = 0.0	# time spent in madvise
        self.stats = {}		# change of /sys/kernel/mm/upm/* over the call

    @property
    def pages(self):
        return self.bytes // PAGE_SIZE

    def as_dict(self):
        return {"ranges": self.ranges, "pages": self.pages,
                "bytes": self.bytes, "skipped": self.skipped,
                "seconds": self.seconds, "stats": dict(self.stats)}

    def __repr__(self):
        return f"Advice({self.as_dict()!r})"


def _call(ranges, advice, tolerate_gone=False):
    """madvise each (start, end) page-aligned range; return an Advice."""
    result = Advice()
    before = stats() if advice == MADV_UPM else {}
    for start, end in ranges:
        if end <= start:
            continue
        t = time.perf_counter()
        rc = _madvise(start, end - start, advice)
        result.seconds += time.perf_counter() - t
        if rc != 0:
            err = ctypes.get_errno()
            if tolerate_gone and err == errno.ENOMEM:
                result.skipped += 1
                continue
            raise OSError(err, f"madvise({start:#x}, {end - start}, {advice}): "
                          f"{os.strerror(err)}")
        result.ranges += 1
        result.bytes += end - start
    if before:
        after = stats()
        result.stats = {k: after[k] - before[k] for k in after
                        if k in before and k != "index_entries"}
        if "index_entries" in after:
            result.stats["index_entries"] = after["index_entries"]
    return result


def _inner_pages(addr, length):
    """The whole pages inside [addr, addr + length)."""
    if addr < 0 or length < 0:
        raise OSError(errno.EINVAL, "negative address or length")
    start = (addr + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    end = (addr + length) & ~(PAGE_SIZE - 1)
    return start, end


def advise_range(addr, length, advice=MADV_UPM):
    """Advise the whole pages inside [addr, addr + length). A partial page at
    either end is left out: it may hold other data."""
    return _call([_inner_pages(int(addr), int(length))], advice)


def _tensor_span(t):
    """(address, bytes) of a CPU tensor's storage."""
    if getattr(t, "device", None) is not None and t.device.type != "cpu":
        raise ValueError(f"tensor on {t.device}: only CPU memory can be advised")
    st = t.untyped_storage() if hasattr(t, "untyped_storage") else t.storage()
    n = st.nbytes() if callable(getattr(st, "nbytes", None)) else st.size() * st.element_size()
    return st.data_ptr(), n


def _spans(obj, out):
    """Collect (address, bytes) spans of obj into out."""
    if hasattr(obj, "data_ptr") and hasattr(obj, "storage"):	# a tensor
        out.append(_tensor_span(obj))
    elif hasattr(obj, "parameters") and hasattr(obj, "buffers"):	# a module
        for t in obj.parameters():
            out.append(_tensor_span(t.data))
        for t in obj.buffers():
            out.append(_tensor_span(t))
    elif isinstance(obj, dict):
        for v in obj.values():
            _spans(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _spans(v, out)
    else:							# the buffer protocol
        view = _PyBuffer()
        if _get_buffer(obj, ctypes.byref(view), _PYBUF_SIMPLE) != 0:
            raise TypeError(f"cannot advise a {type(obj).__name__}")
        try:
            out.append((view.buf or 0, view.len))
        finally:
            _release_buffer(ctypes.byref(view))


def advise(obj, advice=MADV_UPM):
    """Advise the memory of obj: a torch tensor (its storage), a torch module
    (its parameters and buffers), an object with the buffer protocol
    (bytearray, memoryview, mmap, numpy array, ...), or a list, tuple or dict
    of those. Storages shared by several tensors are advised once; pages
    shared by neighbouring buffers are advised once."""
    spans = []
    _spans(obj, spans)
    pages = sorted({_inner_pages(a, n) for a, n in spans if n > 0})
    merged = []
    for start, end in pages:		# join overlapping and adjacent ranges
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return _call(merged, advice)


_SPECIAL = ("[vdso]", "[vvar]", "[vvar_vclock]", "[vsyscall]", "[uprobes]")


def private_anonymous_regions(file_private=False, maps="/proc/self/maps"):
    """(start, end) of the private anonymous regions of /proc/self/maps:
    no file, [heap], [stack], [anon:...]. file_private adds the writable
    private file mappings (their copy-on-write pages are anonymous)."""
    regions = []
    with open(maps) as f:
        for line in f:
            fields = line.split(None, 5)
            span, perms, inode = fields[0], fields[1], fields[4]
            path = fields[5].strip() if len(fields) > 5 else ""
            if perms[3] != "p" or path in _SPECIAL:
                continue
            anon = inode == "0" and (path == "" or path in ("[heap]", "[stack]")
                                     or path.startswith("[anon:"))
            if not anon and not (file_private and "w" in perms and inode != "0"):
                continue
            lo, hi = span.split("-")
            regions.append((int(lo, 16), int(hi, 16)))
    return regions


def advise_process(advice=MADV_UPM, file_private=False):
    """Advise every private anonymous region of the calling process (see
    private_anonymous_regions). A region unmapped meanwhile by another thread
    is counted in Advice.skipped, not raised."""
    return _call(private_anonymous_regions(file_private), advice,
                 tolerate_gone=True)
