"""The flat view of a builder call's jets and constituents, shared by every builder called on the
same arrays.

A :class:`Chunk` holds the jets' fields as numpy arrays (one value per jet), the constituents'
fields flat (every jet's particles one after the other: ``offsets``, ``jet_index``), and the
per-particle quantities several builders use (Δη, Δφ, the jet fields broadcast to the particles,
the order within each jet).  Each is computed once, when first asked for.

:func:`chunk` returns the same Chunk while a builder is called again on the very same jets and
constituents objects (as a processor scores several models on one chunk): the last Chunk is kept,
keyed on the identity of the two arrays and of their layouts, and dropped when the constituents
array is garbage-collected, so it holds no memory beyond the caller's own arrays' lifetime.

Inputs the flat path does not take raise :class:`Unsupported`; the builders then take their
awkward path (``*_on_awkward``, also the tests' oracle), so such inputs give exactly the
values (or the errors) of the catalogues' expressions on awkward arrays: fields with missing values
(None), fields that are not one number per particle or jet.
"""

from __future__ import annotations

import weakref
from functools import cached_property

import awkward as ak
import numpy as np

from hepinfer.features.common import delta_phi
from hepinfer.features.segments import descending_key, sort_within


def fast_delta_phi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`~hepinfer.features.common.delta_phi` of numpy arrays, bit for bit, without most of
    ``np.remainder``'s cost (see the performance guide): with x = a - b + pi and m = 2 pi in x's dtype,
    ``x % m`` is x itself for 0 < x < m and x + m for -m <= x < 0 (``fmod`` is exact there and
    numpy's remainder then adds m once, in x's dtype); every other x (0, NaN, inf, |x| >= m) goes
    through ``np.remainder``."""
    x = a - b + np.pi
    if x.dtype.kind != "f":
        return delta_phi(a, b)
    m = x.dtype.type(2 * np.pi)
    out = x.copy()
    low = (x >= -m) & (x < 0)
    out[low] += m
    rest = np.flatnonzero(~((x > 0) & (x < m)) & ~low)
    out[rest] = np.remainder(x[rest], 2 * np.pi)
    return out - np.pi


class Unsupported(Exception):
    """An input the flat path does not take (the builders fall back to their awkward path)."""


class Fields:
    """``fields.name`` and ``fields["name"]``: ``get(name)``."""

    def __init__(self, get):
        self._get = get

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._get(name)

    def __getitem__(self, name):
        return self._get(name)


def _numbers(array, what: str) -> np.ndarray:
    """``array`` (awkward, one number per entry, no None) as a 1-d numpy array."""
    try:
        out = ak.to_numpy(array, allow_missing=False)
    except (ValueError, TypeError) as err:
        raise Unsupported(f"{what}: {err}") from err
    if out.ndim != 1 or out.dtype.kind not in "biuf":
        raise Unsupported(f"{what} is not one number per entry (shape {out.shape}, dtype {out.dtype})")
    return out


class Chunk:
    """Flat numpy views of ``jets`` (jets,) and ``constituents`` (jets x particles, or None), both
    without the event axis (see :func:`hepinfer.features.common.flat_jets`)."""

    def __init__(self, jets: ak.Array, constituents: ak.Array | None):
        self.jets = jets
        self.constituents = constituents
        self.n_jets = len(jets)
        self._jet_fields: dict[str, np.ndarray] = {}
        self._fields: dict[str, np.ndarray] = {}
        self._views: dict = {}
        self.jet = Fields(self.jet_field)
        self.particle = Fields(self.field)
        self.at_particles = Fields(self.jet_field_at_particles)

    # ---- the jets

    def jet_field(self, name: str) -> np.ndarray:
        """The jets' field ``name``, one number per jet."""
        if name not in self._jet_fields:
            self._jet_fields[name] = _numbers(self.jets[name], f"jet field {name!r}")
        return self._jet_fields[name]

    def has_jet_field(self, name: str) -> bool:
        return name in ak.fields(self.jets)

    # ---- the constituents, flat

    @cached_property
    def counts(self) -> np.ndarray:
        return ak.to_numpy(ak.num(self.constituents, axis=1)).astype(np.int64)

    @cached_property
    def offsets(self) -> np.ndarray:
        offsets = np.zeros(self.n_jets + 1, dtype=np.int64)
        np.cumsum(self.counts, out=offsets[1:])
        return offsets

    @property
    def n_particles(self) -> int:
        return int(self.offsets[-1])

    @cached_property
    def jet_index(self) -> np.ndarray:
        """Per particle, its jet."""
        return np.repeat(np.arange(self.n_jets), self.counts)

    @cached_property
    def local_index(self) -> np.ndarray:
        """Per particle, its place in its jet."""
        return np.arange(self.n_particles) - self.offsets[self.jet_index]

    @cached_property
    def _particles(self) -> ak.Array:
        return ak.flatten(self.constituents, axis=1)

    @cached_property
    def _records(self):
        """(record layout, index into it or None) when the particles are records, possibly
        indexed without missing entries (NanoEvents' linked PF candidates): a field is then read
        with one numpy take.  None for other layouts (read through awkward)."""
        layout = self._particles.layout
        index = None
        if isinstance(layout, (ak.contents.IndexedOptionArray, ak.contents.IndexedArray)):
            index = np.asarray(layout.index.data)
            if index.dtype.kind == "i" and len(index) and index.min() < 0:
                return None  # missing entries: awkward says which field lacks what
            layout = layout.content
        if not isinstance(layout, ak.contents.RecordArray):
            return None
        return layout, index

    def field(self, name: str) -> np.ndarray:
        """The constituents' field ``name``, one number per particle."""
        if name not in self._fields:
            self._fields[name] = self._read_field(name)
        return self._fields[name]

    def _read_field(self, name: str) -> np.ndarray:
        records = self._records
        if records is not None and name in records[0].fields:
            layout, index = records
            content = layout.content(name)
            if isinstance(content, ak.contents.NumpyArray) and content.data.ndim == 1:
                data = np.asarray(content.data)[: layout.length]
                if data.dtype.kind in "biuf":
                    return data if index is None else data[index]
        return _numbers(self._particles[name], f"constituent field {name!r}")

    def is_field(self, array) -> bool:
        """Whether ``array`` is one of the fields as read (not a computed quantity)."""
        return any(array is f for f in (*self._fields.values(), *self._jet_fields.values()))

    def jet_field_at_particles(self, name: str) -> np.ndarray:
        """The jets' field ``name`` repeated for each of their particles."""
        key = ("at_particles", name)
        if key not in self._views:
            self._views[key] = np.repeat(self.jet_field(name), self.counts)
        return self._views[key]

    # ---- quantities shared by the builders

    @cached_property
    def deta(self) -> np.ndarray:
        return self.field("eta") - self.jet_field_at_particles("eta")

    @cached_property
    def dphi(self) -> np.ndarray:
        return fast_delta_phi(self.field("phi"), self.jet_field_at_particles("phi"))

    @cached_property
    def charged(self) -> np.ndarray:
        return self.field("charge") != 0

    def rank(self, sort_by: str) -> np.ndarray:
        """Per particle, its place in its jet sorted by ``sort_by`` descending (the order of
        ``ak.argsort(ascending=False)``: stable, NaN first)."""
        key = ("rank", sort_by)
        if key not in self._views:
            order = sort_within(self.offsets, descending_key(self.field(sort_by)))
            if order is None:
                rank = self.local_index
            else:
                rank = np.empty_like(order)
                rank[order] = self.local_index
            self._views[key] = rank
        return self._views[key]

    def view(self, cls, *args):
        """``cls(self, *args)``, made once per Chunk (builders keep their intermediates there)."""
        key = (cls, *args)
        if key not in self._views:
            self._views[key] = cls(self, *args)
        return self._views[key]


# (weak references to the last arguments, their layouts, the Chunk, a token): one tuple, replaced
# whole, so a reader never sees half of it and no lock is needed (a finalizer may run at any
# allocation, in any thread; losing the entry in a race only costs building a Chunk again)
_last: tuple | None = None


def chunk(jets, constituents, flat: tuple) -> Chunk:
    """The Chunk of the builder arguments ``jets`` / ``constituents`` (as the caller passed them),
    whose event axis ``flat`` = (jets, constituents) no longer has: the last one again when the
    arguments are the very same objects as last time."""
    global _last
    sources = (jets, constituents)
    layouts = tuple(getattr(a, "layout", None) for a in sources)
    last = _last
    if last is not None:
        refs, last_layouts, made, _ = last
        if all(
            (r() if r is not None else None) is a and lay is last_lay
            for r, a, lay, last_lay in zip(refs, sources, layouts, last_layouts)
        ):
            return made
    made = Chunk(*flat)
    try:
        refs = tuple(None if a is None else weakref.ref(a) for a in sources)
    except TypeError:  # arguments that are not weakly referenceable (not ak.Arrays): no reuse
        return made
    token = object()
    _last = (refs, layouts, made, token)
    weakref.finalize(constituents if constituents is not None else jets, _forget, token)
    return made


def _forget(token) -> None:
    global _last
    last = _last
    if last is not None and last[3] is token:
        _last = None


def last_chunk() -> Chunk | None:
    """The Chunk kept for the next call, if any."""
    last = _last
    return None if last is None else last[2]


def clear() -> None:
    """Forget the kept Chunk."""
    global _last
    _last = None
