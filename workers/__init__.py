"""Background work: the composition root (``runtime``), the jobs and the scheduler."""
