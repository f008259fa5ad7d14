# Radio-module registry: the board definition names a module kind; only that module's
# code is imported, when it is created (the others never load on the board).

_MODULES = {
    "wifi": ("meter.broute.radio.wifi", "WifiModule"),
    "ethernet": ("meter.broute.radio.ethernet", "EthernetModule"),
    "wisun": ("meter.broute.radio.wisun", "WisunModule"),
}


class UnknownModule(ValueError):
    """The board names a radio module kind that no implementation is registered for."""


def register(kind, module_path, class_name):
    """Add a kind (host tools register their UDP module this way)."""
    _MODULES[kind] = (module_path, class_name)


def kinds():
    return sorted(_MODULES)


def load(kind):
    """The class implementing `kind`, imported now."""
    if kind not in _MODULES:
        raise UnknownModule("E_RADIO_KIND " + kind)
    path, name = _MODULES[kind]
    mod = __import__(path)
    for part in path.split(".")[1:]:
        mod = getattr(mod, part)
    return getattr(mod, name)


def create(kind, *args, **kwargs):
    """A module of the board's kind, built from the board's parameters."""
    return load(kind)(*args, **kwargs)
