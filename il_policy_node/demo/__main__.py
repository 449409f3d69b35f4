"""python -m il_policy_node.demo: the main job (see il_policy_node/demo/__init__.py)."""
import sys

from il_policy_node.demo import main

sys.exit(main())
