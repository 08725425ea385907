from shopsim.cli import main

raise SystemExit(main())
