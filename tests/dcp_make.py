"""DCP folders for tests, written with torch's own classes.

``dcp.save(..., no_dist=True)`` writes each tensor whole, in one file. Checkpoints of FSDP /
DTensor training hold tensors split into chunks over several ``__RANK_0.distcp`` files;
``write_chunked`` writes exactly that layout (each chunk a ``torch.save`` record at its offset,
``Metadata`` pickled as ``FileSystemWriter`` does), so the reader meets what a world of N ranks
saves without starting one. torch's ``dcp_to_torch_save`` reads these folders (tested).
"""
from __future__ import annotations

import io
import os
import pickle
import warnings

import torch


def save_whole(sd: dict, folder) -> str:
    """``dcp.save(sd, no_dist=True)``: every tensor in one chunk."""
    import torch.distributed.checkpoint as dcp
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dcp.save(sd, checkpoint_id=str(folder), no_dist=True)
    return str(folder)


def write_chunked(folder, tensors: dict[str, torch.Tensor], ranks: int = 2,
                  values: dict | None = None, paths: dict | None = None,
                  metadata_hook=None) -> str:
    """Each tensor split along dim 0 into ``ranks`` chunks (rank r's chunk in ``__r_0.distcp``);
    ``values`` are non-tensor entries (rank 0); ``paths`` the planner's key paths by name.
    ``metadata_hook(metadata)`` may change the Metadata before it is pickled (hostile cases)."""
    from torch.distributed.checkpoint import metadata as md
    from torch.distributed.checkpoint.filesystem import _StorageInfo
    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    streams = [io.BytesIO() for _ in range(ranks)]
    sd_meta: dict = {}
    storage: dict = {}

    def record(rank: int, key: "md.MetadataIndex", obj) -> None:
        s = streams[rank]
        start = s.tell()
        torch.save(obj, s)
        storage[key] = _StorageInfo(f"__{rank}_0.distcp", start, s.tell() - start)

    for name, t in tensors.items():
        props = md.TensorProperties(dtype=t.dtype)
        if t.dim() == 0:
            pieces = [(0, t)]
        else:
            bounds = torch.linspace(0, t.shape[0], ranks + 1).round().long().tolist()
            pieces = [(r, t[bounds[r]:bounds[r + 1]].clone()) for r in range(ranks)
                      if bounds[r + 1] > bounds[r]]
        chunks = []
        start = 0
        for rank, piece in pieces:
            offsets = torch.Size([start] + [0] * (t.dim() - 1)) if t.dim() else torch.Size([])
            chunks.append(md.ChunkStorageMetadata(offsets=offsets, sizes=piece.shape))
            record(rank, md.MetadataIndex(name, offsets, len(chunks) - 1), piece)
            start += piece.shape[0] if t.dim() else 0
        sd_meta[name] = md.TensorStorageMetadata(properties=props, size=t.shape, chunks=chunks)
    for name, value in (values or {}).items():
        sd_meta[name] = md.BytesStorageMetadata()
        record(0, md.MetadataIndex(name), value)
    planner = {n: tuple((paths or {}).get(n, (n,))) for n in sd_meta}
    meta = md.Metadata(state_dict_metadata=sd_meta, planner_data=planner, storage_data=storage)
    if metadata_hook is not None:
        metadata_hook(meta)
    for rank, s in enumerate(streams):
        with open(os.path.join(folder, f"__{rank}_0.distcp"), "wb") as f:
            f.write(s.getvalue())
    with open(os.path.join(folder, ".metadata"), "wb") as f:
        pickle.dump(meta, f)
    return folder


def save_through(sd: dict, folder, extensions) -> str:
    """``dcp.save`` with torch's ``FileSystemWriter(_extensions=...)``: every record written
    through those stream transforms (``transform_descriptors`` in the metadata)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import FileSystemWriter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dcp.save(sd, storage_writer=FileSystemWriter(str(folder), _extensions=list(extensions)),
                 no_dist=True)
    return str(folder)


def _stream_transform():
    from torch.distributed.checkpoint._extension import StreamTransformExtension
    return StreamTransformExtension


class _Buffered(io.RawIOBase):
    """A writable stream handing what was written to ``emit(data)`` when closed."""

    def __init__(self, output, emit):
        self.output, self.emit, self.data = output, emit, bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.data += bytes(b)
        return len(memoryview(b))

    def close(self) -> None:
        if not self.closed:
            self.output.write(self.emit(bytes(self.data)))
            self.output.close()
        super().close()


_XOR = bytes(x ^ 0x5A for x in range(256))


def raw_zstd_frame(data: bytes) -> bytes:
    """``data`` as one genuine Zstandard frame of raw (stored) blocks: what any zstd decoder
    reads, written without the zstandard package (not installed in paramedit's environment)."""
    out = bytearray(b"\x28\xb5\x2f\xfd")  # the magic number
    out += bytes([0x00, 7 << 3])  # no content size, no checksum; a 128 KiB window
    block = 128 * 1024
    pieces = [data[i:i + block] for i in range(0, len(data), block)] or [b""]
    for i, piece in enumerate(pieces):
        header = (len(piece) << 3) | (0 << 1) | (1 if i == len(pieces) - 1 else 0)
        out += header.to_bytes(3, "little") + piece
    return bytes(out)


def transforms():
    """Stream transforms for tests, made on first use (torch's module is imported lazily):
    ``RawZstd`` (torch's ``stream.zstd/1`` descriptor, genuine frames of stored blocks; it only
    writes), ``Xor`` (``test.xor/1``: every byte xor 0x5A, both ways) and ``Bomb``
    (``test.bomb/1``: decodes to endless zeros)."""
    base = _stream_transform()

    class RawZstd(base):
        @staticmethod
        def registry_name() -> str:
            return "stream.zstd"

        @staticmethod
        def from_descriptor(version: str):
            return RawZstd()

        def get_descriptor(self) -> str:
            return "stream.zstd/1"

        def transform_to(self, output):
            return _Buffered(output, raw_zstd_frame)

        def transform_from(self, input):
            raise NotImplementedError("RawZstd only writes")

    class Xor(base):
        @staticmethod
        def registry_name() -> str:
            return "test.xor"

        @staticmethod
        def from_descriptor(version: str):
            if version != "1":
                raise ValueError(f"Unknown extension {version=}")
            return Xor()

        def get_descriptor(self) -> str:
            return "test.xor/1"

        def transform_to(self, output):
            return _Buffered(output, lambda d: d.translate(_XOR))

        def transform_from(self, input):
            return io.BytesIO(input.read().translate(_XOR))

    class Endless(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            memoryview(b)[:] = bytes(len(memoryview(b)))
            return len(memoryview(b))

    class Bomb(Xor):
        @staticmethod
        def registry_name() -> str:
            return "test.bomb"

        @staticmethod
        def from_descriptor(version: str):
            return Bomb()

        def get_descriptor(self) -> str:
            return "test.bomb/1"

        def transform_from(self, input):
            return Endless()

    return RawZstd, Xor, Bomb
