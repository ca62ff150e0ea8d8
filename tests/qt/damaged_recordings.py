"""Recordings with a part that cannot be read, as a damaged disk or a cut copy leaves them (no tests here)."""

import h5py


def damage_first_chunk(path, tap: str, chunk_rows: int = 60):
    """Store ``tap`` compressed in chunks of ``chunk_rows`` rows and garble the first chunk's bytes.

    The file still opens (the reader checks shapes and offsets, not every value); reading rows
    ``[0, chunk_rows)`` of the tap fails in the decompressor, every other row reads back as written.
    """
    name = f"taps/{tap}"
    with h5py.File(path, "r+") as f:
        values = f[name][:]
        attrs = dict(f[name].attrs)
        del f[name]
        dataset = f.create_dataset(name, data=values, chunks=(chunk_rows, values.shape[1]), compression="gzip")
        for key, value in attrs.items():
            dataset.attrs[key] = value
        offset = dataset.id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as raw:
        raw.seek(offset + 2)
        raw.write(b"\xff" * 16)
    return path
