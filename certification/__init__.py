"""The certification suites (a package, so that its modules import as ``certification.*`` from any rootdir)."""
