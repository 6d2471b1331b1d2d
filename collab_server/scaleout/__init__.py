"""Scale-out over Redis: the building blocks (docs/ARCHITECTURE.md §10).

``keys`` names a room's Redis keys, ``entries`` encodes stream entries, ``sequence`` decides
what a received entry means (pure), ``reader`` follows many streams with one blocking XREAD,
``lease`` is the one-writer-per-room lease with a fencing counter, ``presence`` carries
instance liveness and awareness over pub/sub.
"""
