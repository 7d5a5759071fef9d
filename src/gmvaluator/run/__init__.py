"""A valuation run on disk: the run folder and its layout (``folder``), the stages that fill it
(``pipeline``) and adding generated batches to a finished run (``append``)."""
