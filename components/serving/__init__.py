"""The prediction service (``emosafe serve-model``): an ASGI app over a verified bundle, micro-batched, logging
every prediction (without text) to the production log, reloading when the registry alias moves."""
