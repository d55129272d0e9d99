"""`python -m emulator --port 0`: a standalone emulator (prints `READY <base_url>`)."""

from emulator.app import main

raise SystemExit(main())
