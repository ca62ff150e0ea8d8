"""Graph datasets (items are graphs; see ``datasets/graph_base.py`` and ``docs/datasets.md``).

Node classification on one bundled networkx graph: ``karate``, ``lesmis``, ``florentine``
(:mod:`.social`). Graph classification: ``graph-families`` (synthetic networkx generators,
:mod:`.families`) and ``digits-graph`` (scikit-learn's 8x8 digits on a pixel k-NN graph, :mod:`.digits`).
Everything is built offline; networkx (and scikit-learn for the digits) are the ``graphs`` extra.
Node annotations shared by all of them are defined in :mod:`.common`.
"""
