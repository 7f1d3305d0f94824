"""Training-time machinery of mmdms (hooks, loops, optimizer constructors)."""
