"""Objectives: what each stage optimises (loss + what it needs besides the parameters)."""

#: The KL penalty's directions: forward KL(ref || policy), reverse KL(policy || ref). Kept
#: here, free of jax imports, so that the KL stage's planning checks stay light.
KL_DIRECTIONS = ("forward", "reverse")
