"""Engines run the expensive stages of a run (embedding, search): ``local`` in this process,
``ray`` on a Ray cluster. Both implement the protocol in ``engines.base``; the run pipeline
never branches on which one it holds."""
