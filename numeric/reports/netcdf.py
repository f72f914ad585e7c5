"""A netCDF-3 file (64-bit offset format) written as a grid is solved: the header first, then each variable's
values box by box at their places in the file, so that memory does not grow with the grid.

The layout is the one xarray writes through SciPy's netCDF-3 writer (``to_netcdf(engine="scipy",
format="NETCDF3_64BIT")``) for a dataset of float64 coordinates, float64 data variables and int8 ones: the same
dimensions, attributes (float variables carry ``_FillValue = NaN``), variable order (SciPy sorts them by
shape, largest first, keeping their order among equal shapes), begin offsets and padding, byte for byte (a test
compares the two). That writer holds the whole file in memory until it is closed; this one holds one box.

File format: the NetCDF classic format specification (Unidata), version 2 (64-bit offsets). Values are
big-endian; every field, attribute and variable is padded to a multiple of 4 bytes, a variable with the fill
value of its type (or its ``_FillValue``).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: Header tags and netCDF types (the classic format's numbers).
_DIMENSION, _VARIABLE, _ATTRIBUTE = 0x0A, 0x0B, 0x0C
_TYPES = {np.dtype("int8"): 1, np.dtype("int32"): 4, np.dtype("float64"): 6}
_CHAR = 2
#: The default fill byte of an int8 variable (NC_FILL_BYTE), SciPy's padding for one without a _FillValue.
_FILL_BYTE = b"\x81"

Attribute = str | int | float


@dataclass
class Variable:
    """A variable of the file: its dimensions (names), values' type (int8 or float64) and attributes."""

    name: str
    dims: tuple[str, ...]
    dtype: np.dtype
    attrs: dict[str, Attribute] = field(default_factory=dict)
    begin: int = 0
    size: int = 0


def _int(value: int) -> bytes:
    return struct.pack(">i", value)


def _name(text: str) -> bytes:
    raw = text.encode("latin1")
    return _int(len(raw)) + raw + b"\x00" * (-len(raw) % 4)


def _attribute_values(value: Attribute) -> bytes:
    """An attribute's type, count and values as SciPy writes them: text as characters (UTF-8), an integer as
    one int32, a float as one float64."""
    if isinstance(value, str):
        raw, kind, count = value.encode("utf-8"), _CHAR, len(value.encode("utf-8"))
    elif isinstance(value, int):
        raw, kind, count = struct.pack(">i", value), _TYPES[np.dtype("int32")], 1
    else:
        raw, kind, count = struct.pack(">d", value), _TYPES[np.dtype("float64")], 1
    return _int(kind) + _int(count) + raw + b"\x00" * (-len(raw) % 4)


def _attributes(attrs: Mapping[str, Attribute]) -> bytes:
    if not attrs:
        return b"\x00" * 8
    return _int(_ATTRIBUTE) + _int(len(attrs)) + b"".join(_name(k) + _attribute_values(v) for k, v in attrs.items())


class NetCDF3Layout:
    """The header and the place of every variable's values in a netCDF-3 (64-bit offset) file of fixed
    dimensions. ``variables`` in the order they are defined (xarray's: data variables, then coordinates)."""

    def __init__(self, dims: Mapping[str, int], variables: Sequence[Variable], attrs: Mapping[str, Attribute]) -> None:
        self.dims = dict(dims)
        names = list(self.dims)
        for var in variables:
            var.size = int(np.prod([self.dims[d] for d in var.dims], dtype=np.int64)) * var.dtype.itemsize
        # SciPy's order: by shape, largest first (a stable sort, reversed)
        self.variables = sorted(variables, key=lambda v: tuple(self.dims[d] for d in v.dims), reverse=True)

        def header(begins: Sequence[int]) -> bytes:
            parts = [b"CDF\x02", _int(0), _int(_DIMENSION), _int(len(names))]
            parts += [_name(n) + _int(length) for n, length in self.dims.items()]
            parts += [_attributes(attrs), _int(_VARIABLE), _int(len(self.variables))]
            for var, begin in zip(self.variables, begins):
                parts += [_name(var.name), _int(len(var.dims)), *(_int(names.index(d)) for d in var.dims)]
                parts += [_attributes(var.attrs), _int(_TYPES[var.dtype]), _int(var.size + -var.size % 4)]
                parts.append(struct.pack(">q", begin))
            return b"".join(parts)

        begin = len(header([0] * len(self.variables)))
        for var in self.variables:
            var.begin = begin
            begin += var.size + -var.size % 4
        self.header = header([v.begin for v in self.variables])
        self.size = begin

    def padding(self) -> list[tuple[int, bytes]]:
        """(offset, bytes) of every variable's padding: its fill value (a float variable is a multiple of 4
        bytes long; an int8 one has no _FillValue here, so NC_FILL_BYTE)."""
        return [(v.begin + v.size, _FILL_BYTE * (-v.size % 4)) for v in self.variables if v.size % 4]

    def variable(self, name: str) -> Variable:
        return next(v for v in self.variables if v.name == name)

    def encode(self, name: str, values: np.ndarray) -> bytes:
        """Values of a variable as the file holds them (big-endian)."""
        return np.ascontiguousarray(values, dtype=self.variable(name).dtype.newbyteorder(">")).tobytes()
