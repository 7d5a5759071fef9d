"""Matching: faiss indexes over training embeddings, the exact re-rank, top-k and measured recall.
The one home of nearest-neighbour search; the local valuator, the re-rank and the Ray engine all
call it."""
