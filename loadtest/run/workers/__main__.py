"""``python -m loadtest.run.workers``: one generator worker process."""

from loadtest.run.workers.child import main

main()
