"""Ready-to-run scenarios, shipped inside the package as ``loadtest.scenarios``."""
