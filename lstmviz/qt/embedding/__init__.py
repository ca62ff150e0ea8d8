"""The Embedding geometry panel (issue 20, Linzen A7): a token × dimension table (the recording's checkpoint's
embedding or decoder rows, subgraph2vec vectors, label embeddings; class-mean states of a tap per annotation
label; a table file), its nearest neighbours, analogy queries with 3CosAdd, 3CosMul and Linzen's baselines,
per-relation accuracy of every method side by side with chance, and a 2-D map (PCA, UMAP when installed).

``panel`` (the dock's widget), ``map_view`` (the 2-D scatter), ``state`` (its part of the workspace file,
Qt-free). The computation is ``lstmviz.analysis.embedding_tables`` / ``analogy`` / ``embedding_projection``.
Registered as ``PANEL`` (``lstmviz.qt.panels``).
"""

from lstmviz.qt.embedding.state import EMBEDDING_STATE
from lstmviz.qt.panel_description import PanelDescription

PANEL = PanelDescription(name="embedding", title="Embedding geometry", widget="lstmviz.qt.embedding.panel:EmbeddingPanel",
                         area="bottom", group="results", order=90, scroll=False, size=0.45, menu="&Analysis",
                         state=EMBEDDING_STATE)
