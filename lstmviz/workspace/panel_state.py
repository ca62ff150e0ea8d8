"""A panel's part of the workspace: its settings as the model keeps them and as the file saves them.

Every panel that has settings worth saving (the Match panel's search settings, the Probes panel's label
and taps ...) describes them with one ``PanelStateFormat``: the key of its part (``"panels": {name:
{...}}``), its own version, a schema of its entries, how the entries become the panel's state object
and back, how an older version of its part is upgraded, what of it still fits a recording, and what
stays when another recording is opened. The workspace model and the file know no panel: they loop over
the formats registered here (a panel's registration registers its format; ``lstmviz.qt.panels``).

A part saved by a panel this lstmviz does not have is kept as it is (a JSON object) and written back
unchanged, so a workspace survives a round trip through an installation without that panel.
"""

from __future__ import annotations

from typing import Any

from lstmviz.workspace.schema import Invalid, Record, Whole, show_value

#: where a part says which version of itself it is
VERSION_KEY = "version"


class PanelStateFormat:
    """How one panel's state is kept (see the module docstring). Subclass it, or give the parts:

    ``name``: the key of the part and of the state in the model; ``title``: how messages name the panel
    ("the Probes panel"); ``version``: the version written; ``schema``: a ``Record`` of the entries of the
    current version; ``from_values(values) -> state``; ``to_values(state) -> dict``.
    """

    name: str = ""
    title: str = ""
    version: int = 1
    schema: Record = Record({})

    # ------------------------------------------------------------------ to override
    def from_values(self, values: dict) -> Any:
        """The state of checked entries (``schema.read``'s result)."""
        return values

    def to_values(self, state: Any) -> dict:
        """The entries of ``state`` (JSON values; the version is added by ``write``)."""
        return dict(state)

    def migrate(self, values: dict, version: int) -> dict:
        """Entries saved by ``version`` (older than ``self.version``) as the current version has them."""
        return values

    def fit(self, state: Any, recording, problems: list[str]) -> Any:
        """``state`` without what does not fit ``recording`` (a sentence in ``problems`` for each thing
        left out), or None when nothing of it is left."""
        return state

    def for_new_recording(self, state: Any) -> Any:
        """What of ``state`` stays when another recording is opened (None: nothing)."""
        return state

    # ------------------------------------------------------------------ reading and writing
    def read(self, section, where: str) -> Any:
        """The state of a part of a file (``Invalid`` with a sentence for anything wrong)."""
        if not isinstance(section, dict):
            got = "null" if section is None else ("list" if isinstance(section, list) else show_value(section))
            raise Invalid(f"{where} must be a JSON object, got {got}")
        version = Whole(1, 2**31 - 1).read(section.get(VERSION_KEY, 1), f"{where} {VERSION_KEY}")
        if version > self.version:
            raise Invalid(f"{where} was saved by a newer lstmviz ({self.title or self.name} version {version}; this "
                          f"one reads up to {self.version}); update lstmviz to open it")
        entries = {k: v for k, v in section.items() if k != VERSION_KEY}
        if version < self.version:
            entries = self.migrate(entries, version)
        return self.from_values(self.schema.read(entries, where))

    def write(self, state: Any) -> dict:
        return {VERSION_KEY: self.version, **self.to_values(state)}


_FORMATS: dict[str, PanelStateFormat] = {}


def register_panel_state(fmt: PanelStateFormat) -> PanelStateFormat:
    """Make ``fmt`` known to the workspace model and file (a panel's registration calls it)."""
    if not isinstance(fmt.name, str) or not fmt.name:
        raise TypeError(f"a panel state format needs a non-empty string `name`, got {fmt.name!r}")
    existing = _FORMATS.get(fmt.name)
    if existing is not None and existing is not fmt:
        raise ValueError(f"a panel state {fmt.name!r} is already registered")
    _FORMATS[fmt.name] = fmt
    return fmt


def unregister_panel_state(name: str) -> None:
    """Forget the format of panel ``name`` (nothing if there is none)."""
    _FORMATS.pop(name, None)


def panel_state_formats() -> dict[str, PanelStateFormat]:
    """The registered formats by name."""
    return dict(_FORMATS)
