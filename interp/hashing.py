"""Hashes of tensors' contents: what store keys and result files are checked against.

Shared by :mod:`interp.store` (keys of models and data, the fingerprint of a dataset)
and :mod:`interp.results` (the content hash of a result file), below both. Plain
sha256 over the values' bytes, written here because ``torch`` has no stable byte view
of a tensor of any dtype, layout or device, and ``hash`` of a tensor is its identity.
"""

from __future__ import annotations

import hashlib
import os
import threading

import torch

_PARALLEL_BYTES = 1 << 20


def digest(data: memoryview) -> bytes:
    """sha256 of ``data``; above 1 MB as a two-level hash over parts hashed on parallel
    threads (hashlib releases the GIL), so fingerprinting a dataset costs ~2 ms per 10 MB."""
    if data.nbytes <= _PARALLEL_BYTES:
        return hashlib.sha256(data).digest()
    parts = min(4, os.cpu_count() or 1, -(-data.nbytes // _PARALLEL_BYTES))
    step = -(-data.nbytes // parts)
    chunks = [data[i:i + step] for i in range(0, data.nbytes, step)]
    digests: list[bytes] = [b""] * len(chunks)

    def work(i: int) -> None:
        digests[i] = hashlib.sha256(chunks[i]).digest()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(1, len(chunks))]
    for t in threads:
        t.start()
    work(0)
    for t in threads:
        t.join()
    return hashlib.sha256(b"tree" + b"".join(digests)).digest()


def tensor_bytes(t: torch.Tensor) -> memoryview:
    """The bytes of ``t``'s values, whatever its shape (0-d included), dtype, layout or device."""
    t = t.detach()
    if t.layout != torch.strided:  # sparse
        t = t.to_dense()
    if t.is_quantized:
        t = t.int_repr()
    if t.device.type == "meta" or not t.numel():
        return memoryview(b"")
    t = t.cpu().contiguous().reshape(-1)
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    return memoryview(t.view(torch.uint8).numpy())


def tensor_fingerprint(*tensors: torch.Tensor) -> str:
    """A hash of the values, shapes and dtypes of ``tensors``."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(f"{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(digest(tensor_bytes(t)))
    return h.hexdigest()[:32]


__all__ = ["digest", "tensor_bytes", "tensor_fingerprint"]
