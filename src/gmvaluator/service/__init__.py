"""The attribution service: ``attributor`` answers lookups against a finished run in process;
``http`` puts it behind an HTTP API."""

#: Default limit of a request body (bytes); larger ones get 413.
MAX_BYTES = 8 * 1024 * 1024
