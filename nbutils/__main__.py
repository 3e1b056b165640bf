from nbutils.cli import main

raise SystemExit(main())
