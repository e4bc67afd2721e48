from scheduling.cli import main

raise SystemExit(main())
