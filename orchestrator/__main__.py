from orchestrator.quick import main

raise SystemExit(main())
