"""What runs, seen from outside: Prometheus metrics (`GET /metrics`) and OpenTelemetry traces (the `otel` extra).

observer.py holds the hooks the routing layers call (no third-party imports); observed.py passes them on to
metrics.py and tracing.py; http.py wires both into the streamable HTTP app.
"""
