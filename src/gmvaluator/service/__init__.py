"""The attribution service: ``attributor`` answers lookups against a finished run in process;
``http`` puts it behind an HTTP API."""
