"""StateBinding: controls and a workspace value kept in step both ways, without echoes."""

from lstmviz.qt.binding import StateBinding


class Model:
    """A workspace value that announces every change to its listeners (as a signal would)."""

    def __init__(self, value):
        self.value, self.listeners, self.stores = value, [], []

    def set(self, value):
        self.stores.append(value)
        if value != self.value:
            self.value = value
            for listener in self.listeners:
                listener(value)


class Controls:
    """Two controls whose change signals call ``on_change`` (as spin boxes would)."""

    def __init__(self):
        self.a = self.b = 0
        self.on_change = lambda: None
        self.shown = []

    def set_a(self, v):
        self.a = v
        self.on_change()

    def set_b(self, v):
        self.b = v
        self.on_change()

    def show(self, value):
        self.shown.append(value)
        self.set_a(value[0])
        self.set_b(min(value[1], 9))  # b's control cannot show more than 9


def bound(store_shown=False):
    model, controls = Model((0, 0)), Controls()
    binding = StateBinding(lambda: (controls.a, controls.b), controls.show, model.set, store_shown=store_shown)
    controls.on_change = binding.push
    model.listeners.append(binding.model_changed)
    return model, controls, binding


def test_a_control_change_is_stored_and_its_echo_does_not_reset_the_controls():
    model, controls, _ = bound()
    controls.set_a(3)
    assert model.value == (3, 0) and model.stores == [(3, 0)]
    assert controls.shown == []  # the model's announcement of our own store was not shown back


def test_a_model_change_is_shown_without_storing_half_set_controls():
    model, controls, _ = bound()
    model.set((4, 5))
    assert (controls.a, controls.b) == (4, 5) and controls.shown == [(4, 5)]
    assert model.stores == [(4, 5)]  # only the outside store; setting a, then b, stored nothing


def test_a_batch_stores_once_after_the_block():
    model, controls, binding = bound()
    with binding.batch():
        controls.set_a(1)
        controls.set_b(2)
        assert binding.setting and model.stores == []
    binding.push()
    assert model.stores == [(1, 2)] and not binding.setting


def test_store_shown_keeps_what_the_controls_could_take():
    model, controls, _ = bound(store_shown=True)
    model.set((1, 50))
    assert (controls.a, controls.b) == (1, 9)
    assert model.value == (1, 9)  # the panel shows 9, so the workspace keeps 9
    model_plain, controls_plain, _ = bound(store_shown=False)
    model_plain.set((1, 50))
    assert model_plain.value == (1, 50)  # without it, the workspace keeps what it was given
