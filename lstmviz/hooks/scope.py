"""A scoped owner of hooks: everything it attaches exists only inside ``with`` and is removed on exit.

Two kinds of user share it, in a fixed order on every module:

- *writers* (interventions) may return a replacement for a module's output; they run first, before
  any reader of any scope (their torch hook is prepended);
- *readers* (the recorder) see the output after every writer, i.e. what the model really computed
  and passed on (their torch hook is appended).

Within one scope, writers run in the order they were added, and so do readers. Across scopes, all
writers run before all readers; among writers of different scopes, the scope opened last runs first.

Stock ``nn.LSTM`` / ``nn.GRU`` modules hide their per-step signals inside a fused kernel, so they are
reached through their :class:`~lstmviz.hooks.rnn_point.RNNPoint` instead (:meth:`HookScope.read_rnn`,
:meth:`HookScope.edit_rnn`), which follows the same rule: edits are applied inside the recurrence, and
the reader sees the edited values.

    with HookScope() as hooks:
        hooks.read(model.decoder, lambda module, args, kwargs, output: seen.append(output))
        model(tokens)
    # no hook of this scope is left on any module, also when the block raised
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from .rnn_point import RNNPoint

ReadFn = Callable[[nn.Module, tuple, dict, Any], None]
WriteFn = Callable[[nn.Module, tuple, dict, Any], Any]


class HookScope:
    """Owns the hooks it adds while active; :meth:`close` (or leaving ``with``) removes every one of them."""

    def __init__(self) -> None:
        self._active = False
        self._handles: list[Any] = []  # objects with .remove(), in the order they were added
        self._readers: dict[int, list[ReadFn]] = {}
        self._writers: dict[int, list[WriteFn]] = {}

    @property
    def active(self) -> bool:
        return self._active

    def __enter__(self) -> "HookScope":
        if self._active:
            raise RuntimeError("this HookScope is already active; a scope is not re-entrant")
        self._active = True
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def close(self) -> None:
        """Remove every hook of this scope (the others keep being removed when one removal fails)."""
        errors = []
        while self._handles:
            handle = self._handles.pop()
            try:
                handle.remove()
            except Exception as e:  # keep removing the others
                errors.append(e)
        self._readers.clear()
        self._writers.clear()
        self._active = False
        if errors:
            raise errors[0]

    def _check_active(self) -> None:
        if not self._active:
            raise RuntimeError("hooks are added inside `with HookScope() as hooks:` only")

    def read(self, module: nn.Module, fn: ReadFn) -> None:
        """Call ``fn(module, args, kwargs, output)`` after every forward of ``module``, after all writers."""
        self._check_active()
        readers = self._readers.get(id(module))
        if readers is None:
            readers = self._readers[id(module)] = []

            def dispatch(mod, args, kwargs, output):
                for reader in readers:
                    reader(mod, args, kwargs, output)

            self._handles.append(module.register_forward_hook(dispatch, with_kwargs=True))
        readers.append(fn)

    def write(self, module: nn.Module, fn: WriteFn) -> None:
        """Let ``fn(module, args, kwargs, output)`` replace ``module``'s output (return ``None`` to keep it)."""
        self._check_active()
        writers = self._writers.get(id(module))
        if writers is None:
            writers = self._writers[id(module)] = []

            def dispatch(mod, args, kwargs, output):
                changed = False
                for writer in writers:
                    result = writer(mod, args, kwargs, output)
                    if result is not None:
                        output, changed = result, True
                return output if changed else None

            self._handles.append(module.register_forward_hook(dispatch, with_kwargs=True, prepend=True))
        writers.append(fn)

    def before_forward(self, module: nn.Module, fn: Callable[[nn.Module, tuple], None]) -> None:
        """Call ``fn(module, args)`` before every forward of ``module`` (nothing is replaced)."""
        self._check_active()

        def hook(mod, args):
            fn(mod, args)

        self._handles.append(module.register_forward_pre_hook(hook))

    def read_rnn(self, module: nn.Module, on_layer: Callable, what: str = "") -> None:
        """Receive every layer's trace of a stock ``nn.LSTM``/``nn.GRU`` (see :class:`RNNPoint`)."""
        self._check_active()
        self._handles.append(RNNPoint.of(module).add_reader(on_layer, what))

    def edit_rnn(self, module: nn.Module, local: str, fn: Callable, what: str = "") -> None:
        """Edit signal ``local`` (e.g. ``layer0/c``) of a stock ``nn.LSTM``/``nn.GRU`` inside its recurrence:
        ``fn(value [batch, units], step) -> value``; the module runs step by step while this scope is active."""
        self._check_active()
        self._handles.append(RNNPoint.of(module).add_editor(local, fn, what))
