from makemore.cli import main

raise SystemExit(main())
