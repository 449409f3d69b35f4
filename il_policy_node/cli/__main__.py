"""``python -m il_policy_node.cli``: the il-policy command."""
import sys

from il_policy_node.cli import main

sys.exit(main())
