from avatar_rt.cli import main

raise SystemExit(main())
