from clipstyler_opt.cli import main

raise SystemExit(main())
