"""The end-to-end app benchmark: an Emmett app under granian, driven by wrk (``python -m appbench``)."""
