"""Operations: Prometheus metrics (``/metrics``) and structured request logs."""
