"""The valuation itself: the fitted ``Valuator`` (index over training embeddings; a
scikit-learn estimator by ``estimator``), the one credit rule (``credit``), the re-rank of
candidates (``rerank``) and the ``ValuationResult`` they produce. Sits above ``search`` (which
it calls) and below everything that records or reports."""
