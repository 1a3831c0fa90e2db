"""Running untrusted programs: the executor, its HTTP service and client."""
