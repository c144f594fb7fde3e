"""The final model's file, ``model.keras``, written byte-reproducibly (Keras 3).

``model.save(path)`` (keras/src/saving/saving_lib.py, Keras 3.15.1 here) writes a zip
whose bytes change from save to save, and from process to process:

1. ``metadata.json`` holds ``date_saved`` (``datetime.now()``: local time, to the second).
2. ``config.json`` holds ``shared_object_id`` values wherever an object is shared
   between layers (the ``DTypePolicy`` every layer shares, a ``MaxNorm`` constraint
   used by several Dense layers, ...). The id is Python's ``id(obj)``, a memory
   address: identical for two saves of one model object, different in every new
   process (and for every rebuilt model).
3. The zip entry of ``model.weights.h5`` is written with ``ZipFile.writestr(name, ...)``,
   which stamps it with ``time.localtime()``: it depends on the clock and on ``TZ``
   (``metadata.json``/``config.json`` go through ``ZipFile.open(name, "w")`` and get
   1980-01-01 already).
4. ``model.weights.h5`` itself is reproducible with h5py's defaults (datasets are made
   with ``track_times=False``; groups get version-1 object headers, which hold no
   times), but not in general:
   - if anything in the process sets ``h5py.get_config().track_order = True``, Keras'
     groups get version-2 object headers carrying access/modification/change/birth
     times: 152 bytes differ between two saves 2 s apart;
   - when ``saving_lib.is_memory_sufficient(model)`` is false (the weights exceed a
     share of the *currently available* RAM), Keras writes the HDF5 through a temporary
     file on disk rather than in memory, and that file has a different layout
     (72,864 vs 71,108 bytes for the same MLP): the bytes then depend on free memory.

``save_model`` lets Keras save into a temporary file, then writes the
target from its content: the HDF5 file rebuilt canonically in memory (groups and
datasets in sorted order, no times, no creation-order tracking, attributes kept with
their types), ``shared_object_id`` renumbered 1, 2, ... in order of appearance,
``date_saved`` fixed, JSON with sorted keys, and every zip entry stored (no
compression) with a fixed date (1980-01-01 00:00:00), fixed permissions and host
system, in Keras' own entry order. The result loads with ``keras.models.load_model``.

Bytes are a function of the model's architecture, weights (and optimizer state if
compiled), the Keras version (it is in ``metadata.json``) and the h5py/HDF5 versions.
"""

from __future__ import annotations

import io
import json
import pathlib
import tempfile
import zipfile
from typing import Any

import h5py
import numpy as np

from sonarlab.core import files

FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold
FIXED_DATE_SAVED = "1980-01-01@00:00:00"  # Keras' "%Y-%m-%d@%H:%M:%S" format
_FILE_MODE = 0o100644  # regular file, rw-r--r--
_DIR_MODE = 0o40755
_UNIX = 3  # ZipInfo.create_system

_WEIGHTS_H5 = "model.weights.h5"
_CONFIG = "config.json"
_METADATA = "metadata.json"


def save_model(model, target: pathlib.Path) -> None:
    """Write ``model`` to ``target`` (a ``.keras`` path) as Keras would, but with bytes
    that depend only on the model, not on when, where (``TZ``) or in which process it
    is saved. The file is replaced atomically."""
    target = pathlib.Path(target)
    if target.suffix != ".keras":
        raise ValueError(f"target must end in .keras, got {target}")
    with tempfile.TemporaryDirectory(prefix="keras-save-") as tmp:
        raw = pathlib.Path(tmp, "raw.keras")
        model.save(raw)
        data = canonical_keras_archive(raw.read_bytes())
    with files.atomic_path(target) as staged:
        staged.write_bytes(data)


def canonical_keras_archive(data: bytes) -> bytes:
    """The canonical bytes of a ``.keras`` archive (see the module docstring)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        names = [i.filename for i in src.infolist()]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate entries in the archive: {names}")
        for info in src.infolist():  # Keras' own order: metadata, config, weights, assets
            content = src.read(info)
            if info.filename == _METADATA:
                content = _canonical_metadata(content)
            elif info.filename == _CONFIG:
                content = _canonical_config(content)
            elif info.filename == _WEIGHTS_H5:
                content = canonical_h5(content)
            dst.writestr(_fixed_info(info.filename), content)
    return out.getvalue()


def _fixed_info(name: str) -> zipfile.ZipInfo:
    zi = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
    zi.compress_type = zipfile.ZIP_STORED  # no dependence on the zlib version
    zi.create_system = _UNIX
    if name.endswith("/"):
        zi.external_attr = (_DIR_MODE << 16) | 0x10  # MS-DOS directory bit
    else:
        zi.external_attr = _FILE_MODE << 16
    return zi


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True).encode()


def _canonical_metadata(content: bytes) -> bytes:
    meta = json.loads(content)
    if "date_saved" in meta:
        meta["date_saved"] = FIXED_DATE_SAVED
    return _dumps(meta)


def _canonical_config(content: bytes) -> bytes:
    config = json.loads(content)
    renumber: dict[Any, int] = {}

    def walk(node: Any) -> None:
        # Sorted-key order: the numbering depends on the content alone.
        if isinstance(node, dict):
            for key in sorted(node):
                if key == "shared_object_id":
                    node[key] = renumber.setdefault(node[key], len(renumber) + 1)
                else:
                    walk(node[key])
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(config)
    return _dumps(config)


def canonical_h5(content: bytes) -> bytes:
    """The HDF5 file rebuilt in memory: the same groups, datasets (values, dtypes,
    shapes) and attributes, made in sorted order with no object times and no
    creation-order tracking, whatever h5py's global configuration."""
    out = io.BytesIO()
    with (
        h5py.File(io.BytesIO(content), "r") as src,
        h5py.File(out, "w", track_order=False, libver="earliest") as dst,
    ):
        _copy_attrs(src, dst)
        _copy_group(src, dst)
    return out.getvalue()


def _copy_group(src: h5py.Group, dst: h5py.Group) -> None:
    for name in sorted(src.keys()):
        link = src.get(name, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise ValueError(
                f"unexpected {type(link).__name__} {src.name}/{name} in the weights file"
            )
        obj = src[name]
        if isinstance(obj, h5py.Group):
            sub = dst.create_group(name, track_order=False)
            _copy_attrs(obj, sub)
            _copy_group(obj, sub)
        else:
            if obj.compression is not None or obj.chunks is not None:
                # Keras writes plain contiguous datasets; anything else is kept as such.
                ds = dst.create_dataset(
                    name, data=obj[()], dtype=obj.dtype, chunks=obj.chunks,
                    compression=obj.compression, compression_opts=obj.compression_opts,
                    shuffle=obj.shuffle, track_times=False, track_order=False,
                )  # fmt: skip
            else:
                ds = dst.create_dataset(
                    name, data=obj[()], dtype=obj.dtype, track_times=False, track_order=False
                )
            _copy_attrs(obj, ds)


def _copy_attrs(src: h5py.HLObject, dst: h5py.HLObject) -> None:
    for key in sorted(src.attrs.keys()):
        value = src.attrs[key]
        dtype = src.attrs.get_id(key).dtype
        dst.attrs.create(
            key, np.asarray(value, dtype=dtype) if dtype.kind not in "OSU" else value, dtype=dtype
        )
