from sharpeyes.cli import main

raise SystemExit(main())
