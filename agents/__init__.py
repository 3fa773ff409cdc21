"""MADDPG learner of soo-marl (installed as ``soo_marl.agents``)."""
