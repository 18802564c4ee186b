from batch_ops.cli import main

raise SystemExit(main())
