"""The :class:`Recorder` context manager: readers that capture named signals during forward passes.

The recorder is one user of the hook layer (:mod:`lstmviz.hooks`): its readers live in a
:class:`~lstmviz.hooks.scope.HookScope` opened on ``__enter__`` and closed on ``__exit__``. Readers run
after every writer, so inside an :func:`lstmviz.hooks.intervene` block it records the edited values.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from lstmviz.hooks.scope import HookScope

from .recorder_sources import SignalInfo, Source, build_sources, select_signals, signal_catalog


class Recorder:
    """Context manager that records the selected signals of ``model``.

    Args:
        model: any ``nn.Module``.
        signals: exact names or fnmatch patterns from :func:`list_signals`; ``None`` records every tap
            and every signal of every ``nn.LSTM`` / ``nn.GRU``.
        batch_first: layout of *module outputs* recorded by module path (``[B, T, ...]`` when True,
            ``[T, B, ...]`` when False). Taps are batch-first by contract; RNN signals know their layout.
        accumulate: when False (default) a forward call of ``model`` itself starts a fresh recording, so
            :meth:`collect` returns the last forward. When True, values of all calls since
            :meth:`clear` are joined along time (for a ``forward`` that calls the model several times).
        keep: what is kept of each call of a tap or module: ``keep(name, series) -> Tensor`` gets the value
            laid out as ``[batch, positions, units]`` (a view of the module's output, which the engine may
            reuse in place afterwards) and returns a tensor that does not share its memory, e.g. the
            values converted to the storage dtype (one pass instead of a copy and then a conversion); it
            may raise ``ValueError`` to refuse the values. Default: a copy (``series.clone()``). RNN signals
            are kept as they are.

    Within one recording, successive calls of the same tap or module are joined along time: a step tap
    called at steps 0..T-1 gives ``[B, T, units]``, an ``nn.LSTM`` called once per token does too.
    """

    def __init__(self, model: nn.Module, signals: list[str] | str | None = None, *, batch_first: bool = True,
                 accumulate: bool = False, keep: Callable[[str, Tensor], Tensor] | None = None):
        self.model = model
        self.catalog = signal_catalog(model)
        self.signals: list[str] = select_signals(self.catalog, signals)
        self.batch_first = batch_first
        self.accumulate = accumulate
        self._sources: list[Source] = build_sources(self.catalog, self.signals, batch_first, keep)
        self._scope: HookScope | None = None
        self._forwards = 0

    @property
    def infos(self) -> dict[str, SignalInfo]:
        """What each selected signal is (kind, layer, signal, description, units if known)."""
        return {name: self.catalog[name] for name in self.signals}

    def __enter__(self) -> "Recorder":
        if self._scope is not None:
            raise RuntimeError("this Recorder is already active; a Recorder is not re-entrant")
        scope = HookScope().__enter__()
        try:
            for source in self._sources:
                source.attach(scope)
            scope.before_forward(self.model, self._on_model_forward)
        except BaseException:
            scope.close()
            raise
        self._scope = scope
        self.clear()
        return self

    def __exit__(self, *exc) -> bool:
        scope, self._scope = self._scope, None
        if scope is not None:
            scope.close()
        return False

    def _on_model_forward(self, module, args) -> None:
        if not self.accumulate:
            self.clear()
        self._forwards += 1

    def clear(self) -> None:
        """Forget all recorded values."""
        for source in self._sources:
            source.clear()

    def collect(self) -> dict[str, Tensor]:
        """Per selected signal, a detached ``[batch, time, units]`` tensor (batch first).

        Raises ``ValueError`` naming the signals that produced no values (their module was not called).
        """
        values: dict[str, Tensor] = {}
        for source in self._sources:
            values.update(source.values())
        missing = [n for n in self.signals if n not in values]
        if missing:
            where = "; ".join(
                f"{n!r} ({self.catalog[n].kind} at module path {self.catalog[n].path or '<model>'!r})" for n in missing
            )
            raise ValueError(
                f"no values were recorded for {where}: the module was not called during the forward pass"
                + ("" if self._forwards else " (no forward pass of the model ran inside the recorder)")
            )
        return {n: values[n] for n in self.signals}
